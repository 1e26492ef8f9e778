"""Flow renders: a direction lands on the hue and pixel worked out by hand."""
import numpy as np

from occnet.constants import FREE_INDEX, GRID_SHAPE
from occnet.visualization.flow import (STILL_RGB, flow_hue_degrees, render_flow_gt_vs_pred,
                                       topdown_flow_map)
from occnet.visualization.topdown import FREE_RGB


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
        str(preds), '--out-dir', str(tmp_path / 'renders'), '--num-frames', '1', '--scale', '1'])
    runpy.run_path(script, run_name='__main__')
    written = sorted(os.listdir(tmp_path / 'renders'))
    assert len(written) == 2 and written[1].endswith('_flow.png')
    image = cv2.imread(str(tmp_path / 'renders' / written[1]))
    assert image is not None and image.shape[1] > 400
