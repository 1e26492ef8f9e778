"""OpenSceneOccDataset and collect_data on a tiny synthetic data root."""
import os
import pickle

import numpy as np
import pytest
import torch

from occnet.constants import CAMERA_NAMES, FREE_INDEX
from occnet.datasets.collect import collect, split_logs
from occnet.datasets.infos import DataError
from occnet.datasets.samplers import split_scenes_contiguous
from occnet.geometry import pose_matrix, project_points
from occnet.registry import DATASETS

PIPELINE = [dict(type='LoadMultiViewImages'), dict(type='ResizeMultiViewImages', scale=0.5),
            dict(type='LoadOccupancyLabel'), dict(type='PackOccInputs')]


def build(root, split='train', **kwargs):
    return DATASETS.build(dict(type='OpenSceneOccDataset', data_root=str(root),
                               ann_file=str(root / f'openscene_mini_{split}.pkl'),
                               pipeline=PIPELINE, **kwargs))


def raw_frame(root, token):
    for name in os.listdir(root / 'openscene-v1.1/meta_datas/mini'):
        with open(root / 'openscene-v1.1/meta_datas/mini' / name, 'rb') as f:
            for frame in pickle.load(f):
                if frame['token'] == token:
                    return frame
    raise KeyError(token)


def test_point_projects_to_expected_pixel_in_every_camera_after_resize(tiny_data_root):
    dataset = build(tiny_data_root, queue_length=1)
    item = dataset[2]
    sample, imgs = item['data_samples'], item['inputs']['imgs'][-1]  # (N, 3, 45, 80)
    assert imgs.shape == (8, 3, 45, 80) and sample['img_shape'] == (45, 80)
    frame = raw_frame(tiny_data_root, sample['token'])
    # the nearest annotated vehicle's centre, ego -> lidar frame
    anns = frame['anns']
    vehicles = [i for i, n in enumerate(anns['gt_names']) if n == 'vehicle']
    nearest = min(vehicles, key=lambda i: np.linalg.norm(anns['gt_boxes'][i][:2]))
    centre_ego = np.asarray(anns['gt_boxes'][nearest][:3], dtype=float)
    lidar2ego = pose_matrix(frame['lidar2ego_translation'], frame['lidar2ego_rotation'])
    point = (np.linalg.inv(lidar2ego) @ np.r_[centre_ego, 1.0])[:3]
    seen, blue = 0, 0
    for n, cam in enumerate(CAMERA_NAMES):
        info = frame['cams'][cam]
        # independent pinhole: camera coordinates from the camera pose, then K, then the resize
        cam_xyz = np.asarray(info['sensor2lidar_rotation']).T @ (
            point - np.asarray(info['sensor2lidar_translation']))
        fx, fy = info['cam_intrinsic'][0, 0], info['cam_intrinsic'][1, 1]
        cx, cy = info['cam_intrinsic'][0, 2], info['cam_intrinsic'][1, 2]
        expected = 0.5 * np.array([fx * cam_xyz[0] / cam_xyz[2] + cx,
                                   fy * cam_xyz[1] / cam_xyz[2] + cy])
        uv, depth = project_points(point[None], sample['lidar2img'][0, n].astype(np.float64))
        inside = cam_xyz[2] > 0 and 0 <= expected[0] < 80 and 0 <= expected[1] < 45
        if not inside:
            continue
        seen += 1
        np.testing.assert_allclose(uv[0], expected, atol=1e-3)
        assert np.isclose(depth[0], cam_xyz[2], atol=1e-4)
        r, g, b = imgs[n, :, int(expected[1]), int(expected[0])].tolist()
        blue += b > r + 30 and b > g  # vehicles are rendered in blues
    assert seen >= 1 and blue >= 1


def test_labels_dense_and_queue(tiny_data_root):
    dataset = build(tiny_data_root, queue_length=3)
    assert len(dataset) == 6
    first, third = dataset[0], dataset[2]  # scenes of 3 frames: index 0 starts a scene
    assert first['inputs']['imgs'].shape[:2] == (3, 8)
    assert first['data_samples']['queue_valid'].tolist() == [False, False, True]
    assert third['data_samples']['queue_valid'].tolist() == [True, True, True]
    labels = third['data_samples']['voxel_semantics']
    assert labels.shape == (200, 200, 16) and labels.dtype == torch.uint8
    assert (labels[:, :, 3] == 10).float().mean() > 0.9  # ground layer
    assert (labels[:, :, :3] == FREE_INDEX).all()
    mask = third['data_samples']['mask_camera']
    assert mask.dtype == torch.bool and 0.3 < mask.float().mean() < 0.95
    # cur2prev of a real slot is the relative pose of consecutive frames, identity otherwise
    rel = third['data_samples']['cur2prev']
    assert not np.allclose(rel[2], np.eye(4)) and np.allclose(first['data_samples']['cur2prev'][1],
                                                              np.eye(4))


def test_test_mode_prev_tokens_and_scene_sampler(tiny_data_root):
    dataset = build(tiny_data_root, split='val', test_mode=True)
    samples = [dataset[i]['data_samples'] for i in range(len(dataset))]
    assert [s['prev_token'] is None for s in samples] == [True, False, False] * 2
    assert samples[1]['prev_token'] == samples[0]['token']
    parts = split_scenes_contiguous(dataset.scene_ids, 2)
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5]]


def test_split_scenes_contiguous_never_cuts_a_scene():
    scene_ids = [0, 0, 0, 0, 1, 1, 2, 2, 2]
    parts = split_scenes_contiguous(scene_ids, 2)
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    assert sum(len(p) for p in split_scenes_contiguous(scene_ids, 4)) == 9


def test_collect_split_is_deterministic_and_disjoint(tiny_data_root):
    train, val, stats = collect(str(tiny_data_root), 'mini', val_ratio=0.5, seed=0)
    train2, val2, _ = collect(str(tiny_data_root), 'mini', val_ratio=0.5, seed=0)
    assert [f['token'] for f in train] == [f['token'] for f in train2]
    assert not {f['log_name'] for f in train} & {f['log_name'] for f in val}
    assert stats['frames'] == stats['labelled'] == 12 and stats['scenes'] == 4
    frame = train[0]
    assert frame['cams']['CAM_F0']['data_path'].startswith('openscene-v1.1/sensor_blobs/mini/')
    for key in ('occ_gt_final_path', 'flow_gt_final_path', 'occ_invalid_path'):
        assert frame[key].startswith('openscene-v1.0/occupancy/mini/')
        assert os.path.isfile(tiny_data_root / frame[key])
    names = [f'log{i}' for i in range(10)]
    assert split_logs(names, 0.3, 1) == split_logs(list(reversed(names)), 0.3, 1)
    assert split_logs(names, 0.3, 1) != split_logs(names, 0.3, 2)


def test_missing_image_names_file_and_token(tiny_data_root, tmp_path):
    dataset = build(tiny_data_root, queue_length=1)
    info = dataset.get_data_info(0)
    path = info['img_paths'][3]
    moved = tmp_path / 'moved.jpg'
    os.rename(path, moved)
    try:
        with pytest.raises(DataError, match=f'missing image {path} for frame token '
                           f'{info["token"]} \\(CAM_L2\\)'):
            dataset[0]
    finally:
        os.rename(moved, path)
