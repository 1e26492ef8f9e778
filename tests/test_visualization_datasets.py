"""Renders follow the dataset description: Occ3D-nuScenes labels (free = 17, 0.4 m voxels from
-40 m, 6 cameras) are drawn in the Occ3D palette at the Occ3D geometry."""
import os
import runpy
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT
from occnet.descriptions import OCC3D_NUSCENES, OccDescription
from occnet.geometry import lidar2img_matrix, voxel_centers
from occnet.visualization import (column_top_classes, render_gt_vs_pred, shade_by_height,
                                  topdown_class_map, topdown_error_map, topdown_flow_map)
from occnet.visualization.cameras import overlay_occupancy, render_camera_overlays
from occnet.visualization.pipeline_view import render_pipeline_sample
from occnet.visualization.topdown import ERROR_KINDS, FREE_RGB, TEXT_RGB, object_agreement
from occnet.visualization.voxel3d import (EGO_RGB, FACE_SHADE, ChaseCamera, error_grid,
                                          render_chase_gt_vs_pred, render_voxels)

OCC = OCC3D_NUSCENES
FREE, CAR, TRUCK, BUS = OCC.free_index, 4, 10, 3
DRIVEABLE, VEGETATION = 11, 16  # 11 is OpenScene's free label, 16 beyond its palette
# a camera at the grid origin looking along +x: u = 320 - 400 y / x, v = 180 - 400 z / x
FORWARD_CAMERA = dict(sensor2lidar_rotation=np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float),
                      sensor2lidar_translation=np.zeros(3),
                      cam_intrinsic=np.array([[400.0, 0, 320], [0, 400, 180], [0, 0, 1]]))


def occ_grid(shape=OCC.grid_shape):
    return np.full(shape, FREE, dtype=np.uint8)


def test_topdown_map_uses_the_occ3d_palette_and_free_label():
    grid = occ_grid((6, 5, 3))
    grid[4, 1, 2] = VEGETATION
    grid[2, 3, 0] = DRIVEABLE
    grid[0, 0, 1] = OCC.ignore_index
    image = topdown_class_map(grid, shade=False, dataset='occ3d_nuscenes')
    assert tuple(image[6 - 1 - 4, 5 - 1 - 1]) == OCC.palette[VEGETATION]
    assert tuple(image[6 - 1 - 2, 5 - 1 - 3]) == OCC.palette[DRIVEABLE]  # occupied here
    assert tuple(image[5, 4]) == FREE_RGB  # the ignored column
    assert (image != FREE_RGB).any(axis=2).sum() == 2  # class 17 columns drawn as free
    from_meta = topdown_class_map(grid, shade=False, dataset=OCC.metainfo())
    np.testing.assert_array_equal(from_meta, image)
    top_class, top_z = column_top_classes(grid, OCC)
    assert top_class[0, 0] == FREE and top_z[0, 0] == -1 and top_class[2, 3] == DRIVEABLE
    with pytest.raises(ValueError, match='class 16; expected 0..11 or 255'):
        topdown_class_map(grid)  # OpenScene labels stop at 11
    grid[1, 1, 1] = 18
    with pytest.raises(ValueError, match='class 18; expected 0..17 or 255'):
        topdown_class_map(grid, dataset=OCC)


def test_error_map_and_object_agreement_follow_occ3d_labels():
    gt, pred = occ_grid((6, 6, 2)), occ_grid((6, 6, 2))
    gt[1, 1, 0] = pred[1, 1, 0] = CAR  # correct
    gt[2, 2, 0], pred[2, 2, 0] = TRUCK, BUS  # wrong class
    gt[3, 3, 0] = DRIVEABLE  # missed (OpenScene would call 11 free)
    pred[4, 4, 1] = VEGETATION  # false
    image, counts = topdown_error_map(gt, pred, dataset=OCC)
    assert counts == {name: 1 for name, _ in ERROR_KINDS}
    for (x, y), (_, colour) in zip([(1, 1), (2, 2), (3, 3), (4, 4)], ERROR_KINDS):
        assert tuple(image[6 - 1 - x, 6 - 1 - y]) == colour
    assert tuple(image[0, 0]) == FREE_RGB
    # objects: truck = truck (right), bus vs truck (wrong); vegetation vs manmade is ground
    gt_cells, pred_cells = np.array([TRUCK, BUS, VEGETATION]), np.array([TRUCK, TRUCK, 15])
    assert object_agreement(gt_cells, pred_cells, OCC) == pytest.approx(50.0)
    assert object_agreement(gt_cells, pred_cells) == 100.0  # OpenScene: 10, 3 not objects


def test_gt_vs_pred_draws_occ3d_colours_and_a_scale_bar_of_its_voxel_size():
    gt = occ_grid((60, 60, 2))
    gt[55, 50, 1] = VEGETATION
    image = render_gt_vs_pred(gt, gt.copy(), scale=1, dataset='occ3d_nuscenes')
    top, left = 20 + 26, 20  # no title: margin + panel name line
    expected = np.rint(shade_by_height(np.array(OCC.palette[VEGETATION], float), 1, 2))
    np.testing.assert_array_equal(image[top + 60 - 1 - 55, left + 60 - 1 - 50], expected)
    # the 10 m bar is 25 voxels of 0.4 m (20 of OpenScene's 0.5 m) long, from x = 10
    assert tuple(image[top + 60 - 12, left + 10 + 23]) == TEXT_RGB
    legend = image[top + 60:]
    assert (legend == OCC.palette[VEGETATION]).all(axis=2).any()  # its legend swatch


def test_flow_map_takes_the_occ3d_free_label():
    dense = occ_grid((4, 4, 2))
    flow = np.zeros((4, 4, 2, 2))
    dense[3, 0, 1] = DRIVEABLE
    flow[3, 0, 1] = [10.0, 0.0]  # forward at full speed
    image = topdown_flow_map(dense, flow, max_speed=10.0, dataset=OCC.metainfo())
    assert image[0, 3].tolist() == [255, 0, 0]
    assert image[3, 3].tolist() == list(FREE_RGB)  # class 17: free
    assert (image != FREE_RGB).any(axis=2).sum() == 1


def test_camera_overlay_uses_occ3d_geometry_palette_and_ground_classes():
    lidar2img = lidar2img_matrix(FORWARD_CAMERA)
    dense = occ_grid()
    dense[150, 105, 5] = CAR  # centre (20.2, 2.2, 1.2) m on the 0.4 m grid from -40 m
    dense[160, 100, 5] = VEGETATION  # ground class of Occ3D: skipped by default
    dense[140, 100, 2] = DRIVEABLE  # skipped too
    x, y, z = voxel_centers(OCC.grid_shape, OCC.point_cloud_range, OCC.voxel_size)[150, 105, 5]
    assert (x, y, z) == pytest.approx((20.2, 2.2, 1.2))
    u, v = 320 - 400 * y / x, 180 - 400 * z / x
    image = np.zeros((360, 640, 3), dtype=np.uint8)
    out, drawn = overlay_occupancy(image, lidar2img, dense, alpha=1.0, radius=1, dataset=OCC)
    assert drawn == 1
    assert out[int(v), int(u)].tolist() == list(OCC.palette[CAR])
    _, drawn = overlay_occupancy(image, lidar2img, dense, skip_classes=(), dataset=OCC)
    assert drawn == 3
    tiles = render_camera_overlays([image] * 6, [lidar2img] * 6, dense, width=160, dataset=OCC)
    assert tiles.shape == (2 * 90, 3 * 160, 3)  # 6 cameras: two rows of 3
    with pytest.raises(ValueError, match='8 images .* 6 cameras of occ3d_nuscenes'):
        render_camera_overlays([image] * 8, [lidar2img] * 8, dense, dataset=OCC)


def test_pipeline_view_lays_out_the_occ3d_cameras():
    imgs = np.zeros((2, 6, 3, 36, 64), dtype=np.uint8)
    lidar2img = np.tile(lidar2img_matrix(FORWARD_CAMERA), (2, 6, 1, 1))
    labels = occ_grid()
    labels[150, 105, 5] = CAR
    sample = dict(token='abc', queue_valid=[True, True], voxel_semantics=labels)
    image = render_pipeline_sample(imgs, lidar2img, sample, camera_width=80, dataset=OCC)
    header = 22 * 3 + 12  # 3 text lines
    cameras = image[header:header + 2 * 45]  # 64 x 36 images shown 80 x 45
    assert (cameras[:, 3 * 80:] == 255).all()  # 3 tiles a row, padded white beyond
    assert (cameras[:, :3 * 80] != 255).any(axis=2).mean() > 0.9
    assert image.shape[1] == 2 * 20 + 2 * 200  # the top-down labels at 2 pixels per voxel
    labels_top = image.shape[0] - 10 - 2 * 200  # the last panel, 10 pixels above the bottom
    expected = np.rint(shade_by_height(np.array(OCC.palette[CAR], float), 5, 16))
    np.testing.assert_array_equal(
        image[labels_top + 2 * (199 - 150), 20 + 2 * (199 - 105)], expected)
    with pytest.raises(ValueError, match='for the 8 cameras of openscene'):
        render_pipeline_sample(imgs, lidar2img, sample, camera_width=80)


def test_voxel_render_uses_the_occ3d_grid_and_palette():
    grid = occ_grid()
    grid[150] = VEGETATION  # a wall, x in [20.0, 20.4) m
    grid[20, 20, 3] = DRIVEABLE
    camera = ChaseCamera(position=(-10.0, 0.3, 2.3), target=(10.0, 0.3, 2.3), fov_deg=40,
                         size=(64, 48))
    image, depth = render_voxels(grid, camera, dataset=OCC, draw_ego=False)
    centre = (24, 32)
    assert depth[centre] == pytest.approx(30.0, abs=0.05)  # OpenScene's grid: 35 m
    expected = np.array(OCC.palette[VEGETATION]) * FACE_SHADE[0]
    np.testing.assert_allclose(image[centre], np.rint(expected), atol=1)
    gt, pred = occ_grid((2, 1, 1)), occ_grid((2, 1, 1))
    gt[0, 0, 0] = DRIVEABLE
    assert error_grid(gt, pred, OCC)[:, 0, 0].tolist() == [2, FREE]  # missed, both free


def test_voxel_render_defaults_come_from_a_custom_description():
    tiny = OccDescription(
        name='tiny', class_names=('thing', 'ground'), free_index=2, ignore_index=255,
        evaluated=(0, 1), foreground=(0,), palette=((200, 10, 10), (10, 10, 200), (0, 0, 0)),
        point_cloud_range=(-5.0, -5.0, -2.0, 5.0, 5.0, 2.0), voxel_size=1.0,
        grid_shape=(10, 10, 4), grid_frame='lidar', camera_names=('CAM',), image_size=(64, 48))
    grid = np.full(tiny.grid_shape, 2, dtype=np.uint8)
    grid[7] = 0  # wall, x in [2, 3) m
    camera = ChaseCamera(position=(-20.0, 0.3, 0.3), target=(10.0, 0.3, 0.3), fov_deg=40,
                         size=(64, 48))
    image, depth = render_voxels(grid, camera, dataset=tiny.metainfo(), draw_ego=False)
    assert depth[24, 32] == pytest.approx(22.0, abs=0.05)
    np.testing.assert_allclose(image[24, 32], np.rint(np.array((200, 10, 10)) * 0.8), atol=1)


def test_chase_render_puts_the_occ3d_ego_box_on_the_ground():
    gt = occ_grid()
    gt[:, :, 2] = DRIVEABLE  # the road, z in [-0.2, 0.2) m of the ego frame
    gt[140:150, 95:105, 3:7] = CAR
    camera = ChaseCamera(size=(160, 100))
    image, _ = render_voxels(gt, camera, dataset=OCC)
    uv, _ = camera.project(np.array([[1.35, 0.0, 1.7]]))  # the top of the ego box
    u, v = np.rint(uv[0]).astype(int)
    assert image[v, u].tolist() == list(EGO_RGB)  # a top face, full brightness
    panels = render_chase_gt_vs_pred(gt, gt.copy(), 'title', camera, dataset=OCC)
    assert panels.shape[1] == 2 * 20 + 3 * 160 + 2 * 16


def test_visualize_tool_renders_occ3d_labels(tmp_path, monkeypatch):
    """Occ3D infos (the CVPR 2023 challenge flavour) and gts/<scene>/<token>/labels.npz."""
    from test_occ3d import challenge_frame, write_infos
    dense = occ_grid()
    dense[150, 60, 8] = VEGETATION
    dense[140, 100, 2] = DRIVEABLE
    frame = challenge_frame('tok0', scene='scene-1')
    os.makedirs(tmp_path / 'gts' / 'scene-1' / 'tok0')
    mask = np.ones(OCC.grid_shape, dtype=np.uint8)
    np.savez_compressed(tmp_path / frame['occ_gt_path'], semantics=dense, mask_lidar=mask,
                        mask_camera=mask)
    write_infos(tmp_path / 'infos.pkl', [frame])
    preds = tmp_path / 'preds'
    preds.mkdir()
    np.savez(preds / 'tok0.npz', semantics=dense)
    script = os.path.join(REPO_ROOT, 'tools', 'visualize.py')
    argv = [script, '--infos', str(tmp_path / 'infos.pkl'), '--pred-dir', str(preds),
            '--out-dir', str(tmp_path / 'renders'), '--num-frames', '1', '--scale', '1']
    monkeypatch.setattr(sys, 'argv', argv + ['--dataset', 'occ3d_nuscenes'])
    runpy.run_path(script, run_name='__main__')
    written = cv2.imread(str(tmp_path / 'renders' / 'scene-1_tok0.png'))[..., ::-1]
    top, left = 20 + 40 + 26, 20  # margin, title line, panel name line
    expected = np.rint(shade_by_height(np.array(OCC.palette[VEGETATION], float), 8, 16))
    np.testing.assert_array_equal(written[top + 200 - 1 - 150, left + 200 - 1 - 60], expected)
    monkeypatch.setattr(sys, 'argv', argv + ['--dataset', 'nuscenes'])
    with pytest.raises(SystemExit):
        runpy.run_path(script, run_name='__main__')
    monkeypatch.setattr(sys, 'argv', argv)  # OpenScene labels stop at 11
    with pytest.raises(SystemExit, match='openscene labels are 0..11'):
        runpy.run_path(script, run_name='__main__')
