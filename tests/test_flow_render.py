"""Flow renders: a direction lands on the hue and pixel worked out by hand."""
import numpy as np

from occnet.descriptions import OPENSCENE
from occnet.visualization.flow import (STILL_RGB, flow_hue_degrees, render_flow_gt_vs_pred,
                                       topdown_flow_map)
from occnet.visualization.topdown import FREE_RGB

FREE_INDEX, GRID_SHAPE = OPENSCENE.free_index, OPENSCENE.grid_shape


def test_hues_of_the_four_directions():
    hues = flow_hue_degrees(np.array([1.0, 0.0, -1.0, 0.0]), np.array([0.0, 1.0, 0.0, -1.0]))
    np.testing.assert_allclose(hues, [0, 90, 180, 270])


def test_flow_map_colours_the_top_voxel_of_each_column():
    dense = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
    flow = np.zeros((*GRID_SHAPE, 2))
    dense[150, 100, 4] = dense[150, 100, 6] = 0  # the top voxel (z = 6) moves forward
    flow[150, 100, 6] = [10.0, 0.0]
    flow[150, 100, 4] = [0.0, 10.0]
    dense[60, 40, 5] = 7  # a pedestrian standing still
    flow[60, 40, 5] = [0.05, 0.0]
    image = topdown_flow_map(dense, flow, max_speed=10.0)
    # image row = X - 1 - x, column = Y - 1 - y
    assert image[49, 99].tolist() == [255, 0, 0]  # forward at full speed: pure red
    assert image[139, 159].tolist() == list(STILL_RGB)
    assert image[0, 0].tolist() == list(FREE_RGB)
    canvas = render_flow_gt_vs_pred(dense, flow, dense, np.zeros_like(flow), scale=1)
    assert canvas.shape[0] > 200 and canvas.shape[1] > 400


def test_visualize_writes_flow_renders_when_predictions_have_flow(tiny_data_root, tmp_path,
                                                                  monkeypatch):
    import os
    import pickle
    import runpy
    import sys

    import cv2

    from conftest import REPO_ROOT
    from occnet.datasets.labels import load_occupancy
    with open(tiny_data_root / 'openscene_mini_val.pkl', 'rb') as f:
        frames = pickle.load(f)
    preds = tmp_path / 'preds'
    preds.mkdir()
    for frame in frames:
        gt = load_occupancy(str(tiny_data_root / frame['occ_gt_final_path']), frame['token'])
        np.savez(preds / f"{frame['token']}.npz", semantics=gt,
                 flow=np.zeros((*GRID_SHAPE, 2), dtype=np.float32))
    script = os.path.join(REPO_ROOT, 'tools', 'visualize.py')
    monkeypatch.setattr(sys, 'argv', [
        script, '--infos', str(tiny_data_root / 'openscene_mini_val.pkl'), '--pred-dir',
        str(preds), '--out-dir', str(tmp_path / 'renders'), '--num-frames', '1', '--scale', '1',
        '--cameras', '--chase', '--scene', 'first', '--animation-width', '96'])
    runpy.run_path(script, run_name='__main__')
    written = sorted(os.listdir(tmp_path / 'renders'))
    stills = [name for name in written if name.endswith('.png')]
    assert len(stills) == 4 and stills[1].endswith('_3d.png')
    assert stills[2].endswith('_cameras.png') and stills[3].endswith('_flow.png')
    scene = sorted({frame['scene_name'] for frame in frames})[0]
    assert frames[0]['scene_name'] == scene
    from PIL import Image
    with Image.open(tmp_path / 'renders' / f'{scene}.gif') as gif:  # the scene's 3 frames
        assert gif.n_frames == 3 and gif.size[0] == 2 * 20 + 3 * 96 + 2 * 16
    flow_image = cv2.imread(str(tmp_path / 'renders' / stills[3]))
    assert flow_image is not None and flow_image.shape[1] > 400
    chase = cv2.imread(str(tmp_path / 'renders' / stills[1]))
    assert chase.shape[1] == 2 * 20 + 3 * 480 + 2 * 16  # three 480-pixel panels
    cameras = cv2.imread(str(tmp_path / 'renders' / stills[2]))
    assert cameras.shape == (2 * 270, 4 * 480, 3)  # 160x90 cameras shown 480 wide


def test_a_voxel_is_drawn_at_its_projected_pixel_in_its_class_colour():
    from occnet.geometry import lidar2img_matrix, voxel_centers
    from occnet.visualization.cameras import overlay_occupancy, render_camera_overlays
    # a camera at the lidar origin looking along +x: u = 320 - 400 y / x, v = 180 - 400 z / x
    cam = dict(sensor2lidar_rotation=np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float),
               sensor2lidar_translation=np.zeros(3),
               cam_intrinsic=np.array([[400.0, 0, 320], [0, 400, 180], [0, 0, 1]]))
    lidar2img = lidar2img_matrix(cam)
    dense = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
    dense[140, 104, 9] = 7  # pedestrian: centre (20.25, 2.25, 0.75) m
    dense[60, 100, 9] = 0  # a vehicle behind the camera: not drawn
    dense[150, 100, 3] = 10  # background: skipped
    x, y, z = voxel_centers()[140, 104, 9]
    u, v = 320 - 400 * y / x, 180 - 400 * z / x
    image = np.zeros((360, 640, 3), dtype=np.uint8)
    out, drawn = overlay_occupancy(image, lidar2img, dense, alpha=1.0, radius=1)
    assert drawn == 1
    assert out[int(v), int(u)].tolist() == list(OPENSCENE.palette[7])
    painted = np.argwhere(out.any(-1))  # one small dot around (u, v), nothing else
    assert len(painted) >= 1 and np.abs(painted - [int(v), int(u)]).max() <= 1
    grid = render_camera_overlays([image] * 8, [lidar2img] * 8, dense, width=160)
    assert grid.shape == (180, 640, 3)
