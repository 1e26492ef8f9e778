"""OpenSceneOccDataset and collect_data on a tiny synthetic data root."""
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from occnet.datasets.infos import DataError
from occnet.datasets.samplers import split_scenes_contiguous
from occnet.datasets.synthetic.shapes import GLASS
from occnet.datasets.synthetic.writer import log_world
from occnet.datasets.transforms.bev_flip import mirror_matrix
from occnet.descriptions import OPENSCENE
from occnet.geometry import pose_matrix, project_points, relative_pose
from occnet.registry import DATASETS

from conftest import TINY_FRAMES_PER_LOG, TINY_SEED

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
    # the vehicle's paints and glass, from the generator's world of that log
    world = log_world(TINY_SEED, int(frame['scene_name'].split('-')[1]), TINY_FRAMES_PER_LOG)
    index = world.objects.track_token.index(anns['track_tokens'][nearest])
    colours = np.concatenate([world.objects.part_colour[world.objects.part_object == index],
                              [GLASS]]).astype(np.float64)
    seen, shown = 0, 0
    for n, cam in enumerate(OPENSCENE.camera_names):
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
        pixel = imgs[n, :, int(expected[1]), int(expected[0])].double().numpy()
        # the pixel shows one of the vehicle's colours, shaded by the sun (0.55 to 1)
        shade = colours @ pixel / (colours * colours).sum(axis=1)
        error = np.abs(pixel - shade[:, None] * colours).max(axis=1)
        shown += bool(np.any((shade > 0.45) & (shade < 1.1) & (error < 20)))
    assert seen >= 1 and shown == seen


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
    assert (labels[:, :, :3] == OPENSCENE.free_index).all()
    mask = third['data_samples']['mask_camera']
    assert mask.dtype == torch.bool and 0.3 < mask.float().mean() < 0.95
    # cur2prev of a real slot is the relative pose of consecutive frames, identity otherwise
    rel = third['data_samples']['cur2prev']
    assert not np.allclose(rel[2], np.eye(4)) and np.allclose(first['data_samples']['cur2prev'][1],
                                                              np.eye(4))


def test_test_mode_prev_tokens_and_scene_sampler(tiny_data_root):
    dataset = build(tiny_data_root, split='val', test_mode=True, with_ray_origins=True)
    samples = [dataset[i]['data_samples'] for i in range(len(dataset))]
    assert [s['prev_token'] is None for s in samples] == [True, False, False] * 2
    plain = build(tiny_data_root, split='val', test_mode=True)[0]['data_samples']
    assert 'ray_origins' not in plain  # RayIoU off: no origins
    assert samples[1]['prev_token'] == samples[0]['token']
    parts = split_scenes_contiguous(dataset.scene_ids, 2)
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5]]
    # RayIoU origins: the frame's own, then its scene neighbours, as eval_occ computes them
    import pickle

    from occnet.evaluation.ray_iou import scene_ray_origins
    with open(tiny_data_root / 'openscene_mini_val.pkl', 'rb') as f:
        expected = scene_ray_origins(pickle.load(f), max_offset=2)
    for sample in samples:
        np.testing.assert_allclose(sample['ray_origins'], expected[sample['token']], atol=1e-4)
    assert [len(s['ray_origins']) for s in samples] == [3, 3, 3] * 2  # scenes of 3 frames
    np.testing.assert_allclose(samples[1]['ray_origins'][0], 0.0)


def test_split_scenes_contiguous_never_cuts_a_scene():
    scene_ids = [0, 0, 0, 0, 1, 1, 2, 2, 2]
    parts = split_scenes_contiguous(scene_ids, 2)
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    assert sum(len(p) for p in split_scenes_contiguous(scene_ids, 4)) == 9


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


def damaged_copy(root, tmp_path, change_infos=None):
    """A copy of the tiny data root whose train infos `change_infos` may edit in place."""
    copy = shutil.copytree(root, tmp_path / 'root')
    if change_infos is not None:
        path = copy / 'openscene_mini_train.pkl'
        with open(path, 'rb') as f:
            infos = pickle.load(f)
        change_infos(infos)
        with open(path, 'wb') as f:
            pickle.dump(infos, f, protocol=4)
    return copy


def test_can_bus_deltas_and_scene_start(tiny_data_root):
    dataset = build(tiny_data_root, queue_length=3)
    sample = dataset[2]['data_samples']
    raw = [raw_frame(tiny_data_root, dataset.get_data_info(i)['token']) for i in (0, 1, 2)]
    can_bus = sample['can_bus']
    assert can_bus.shape == (3, 18) and not sample['scene_start']
    np.testing.assert_allclose(can_bus[2, :3], raw[2]['ego2global'][:3, 3]
                               - raw[1]['ego2global'][:3, 3], atol=1e-4)
    yaw = [np.arctan2(r['ego2global'][1, 0], r['ego2global'][0, 0]) for r in raw]
    np.testing.assert_allclose(can_bus[2, 16], yaw[2], atol=1e-6)
    np.testing.assert_allclose(can_bus[2, 17], np.degrees(yaw[2] - yaw[1]), atol=1e-4)
    assert can_bus[0, :3].tolist() == [0, 0, 0] and can_bus[0, 17] == 0
    np.testing.assert_allclose(sample['cur2prev'][2], relative_pose(
        raw[2]['lidar2global'], raw[1]['lidar2global']), atol=1e-5)
    assert dataset[0]['data_samples']['scene_start'] and dataset[3]['data_samples']['scene_start']


def test_random_history_window_stays_in_scene(tiny_data_root):
    dataset = build(tiny_data_root, queue_length=2, queue_window=2)
    np.random.seed(0)
    histories = {dataset.queue_indices(2)[0][0] for _ in range(50)}
    assert histories == {0, 1}  # frame 2's scene is frames 0-2
    assert {dataset.queue_indices(3)[0][0] for _ in range(10)} == {3}  # a scene start
    fixed = build(tiny_data_root, queue_length=2)
    assert {fixed.queue_indices(2)[0][0] for _ in range(10)} == {1}


def test_bev_flip_is_consistent_across_the_queue(tiny_data_root):
    flip_pipeline = PIPELINE[:-1] + [dict(type='RandomFlipBEV', flip_x_ratio=1.0,
                                          flip_y_ratio=0.0), PIPELINE[-1]]
    plain = build(tiny_data_root, queue_length=3)[2]['data_samples']
    flipped = DATASETS.build(dict(
        type='OpenSceneOccDataset', data_root=str(tiny_data_root),
        ann_file=str(tiny_data_root / 'openscene_mini_train.pkl'), pipeline=flip_pipeline,
        queue_length=3))[2]['data_samples']
    mirror = mirror_matrix(True, False)
    assert flipped['bev_flip'] == (True, False)
    np.testing.assert_allclose(flipped['lidar2img'], plain['lidar2img'] @ mirror, rtol=1e-6)
    np.testing.assert_allclose(flipped['cur2prev'], mirror @ plain['cur2prev'] @ mirror,
                               atol=1e-6)
    assert torch.equal(flipped['voxel_semantics'], plain['voxel_semantics'].flip(0))
    assert torch.equal(flipped['mask_camera'], plain['mask_camera'].flip(0))


def test_corrupt_image_raises_or_is_skipped_and_counted(tiny_data_root, tmp_path):
    root = damaged_copy(tiny_data_root, tmp_path)
    dataset = build(root, queue_length=1)
    info = dataset.get_data_info(1)
    path = info['img_paths'][5]
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(DataError, match=f'corrupt image {path} for frame token '
                       f'{info["token"]} \\(CAM_R1\\).*truncated.*verify_dataset'):
        dataset[1]
    skipping = build(root, queue_length=1, skip_bad_frames=True)
    assert skipping.prepare_data(1) is None and skipping.num_skipped == 1
    np.random.seed(0)
    item = skipping[1]  # replaced by another frame
    assert item is not None and item['data_samples']['token'] != info['token']
    with pytest.raises(ValueError, match='skip_bad_frames is for training only'):
        build(root, split='val', test_mode=True, skip_bad_frames=True)


def test_nan_can_bus_in_infos_names_file_and_token(tiny_data_root, tmp_path):
    tokens = []

    def poison(infos):
        infos[4]['can_bus'] = np.array(infos[4]['can_bus'], dtype=float)
        infos[4]['can_bus'][0] = np.nan
        tokens.append(infos[4]['token'])
    root = damaged_copy(tiny_data_root, tmp_path, poison)
    ann_file = root / 'openscene_mini_train.pkl'
    with pytest.raises(DataError, match=f'{ann_file}: frame {tokens[0]}: can_bus holds NaN'):
        build(root)
    dataset = build(root, skip_bad_frames=True)
    assert len(dataset) == 5
    assert tokens[0] not in {dataset.get_data_info(i)['token'] for i in range(5)}


def test_lidar_path_resolved_against_data_root_or_none(tiny_data_root, tmp_path):
    dataset = build(tiny_data_root)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert info['lidar_path'] == str(tiny_data_root / 'openscene-v1.1/sensor_blobs/mini'
                                         / info['log_name'] / 'MergedPointCloud'
                                         / f"{info['token']}.pcd")
    with open(tiny_data_root / 'openscene_mini_train.pkl', 'rb') as f:
        infos = pickle.load(f)
    del infos[0]['lidar_path']  # infos collected before lidar_path was kept
    infos[1]['lidar_path'] = '/elsewhere/x.pcd'
    with open(tmp_path / 'infos.pkl', 'wb') as f:
        pickle.dump(infos, f, protocol=4)
    dataset = DATASETS.build(dict(type='OpenSceneOccDataset', data_root=str(tiny_data_root),
                                  ann_file=str(tmp_path / 'infos.pkl'), pipeline=PIPELINE))
    assert dataset.get_data_info(0)['lidar_path'] is None
    assert dataset.get_data_info(1)['lidar_path'] == '/elsewhere/x.pcd'


def test_unlabelled_frames_in_infos_are_not_samples(tiny_data_root, tmp_path):
    root = damaged_copy(tiny_data_root, tmp_path,
                        lambda infos: infos[1].update(occ_gt_final_path=None))
    assert len(build(root)) == 5
    assert len(build(root, with_label=False)) == 6


@pytest.mark.parametrize('bad,message', [
    (np.zeros((5, 3), dtype=np.int64), 'has shape \\(5, 3\\)'),
    (np.array([[640000, 0]]), 'holds voxel indices outside .*e.g. 640000'),
    (np.array([[5, 12]]), 'holds classes outside \\[0, 12\\), e.g. 12'),
    (np.array([[1.5, 0.0]]), 'has shape .*float64; expected integer'),
])
def test_bad_label_file_names_file_and_token(tiny_data_root, tmp_path, bad, message):
    root = damaged_copy(tiny_data_root, tmp_path)
    dataset = build(root, queue_length=1)
    info = dataset.get_data_info(2)
    np.save(info['occ_gt_final_path'], bad)
    with pytest.raises(DataError, match=f'label {info["occ_gt_final_path"]} \\(frame '
                       f'{info["token"]}\\) {message}'):
        dataset[2]
    os.remove(info['occ_gt_final_path'])
    with pytest.raises(DataError, match=f'missing label file {info["occ_gt_final_path"]} '
                       f'for frame token {info["token"]}'):
        dataset[2]


def test_random_scale_is_shared_by_the_queue_and_varies_between_samples(tiny_data_root):
    pipeline = [dict(type='LoadMultiViewImages'),
                dict(type='RandomScaleMultiViewImages', scales=(0.25, 0.5)),
                dict(type='LoadOccupancyLabel'), dict(type='PackOccInputs')]
    dataset = DATASETS.build(dict(
        type='OpenSceneOccDataset', data_root=str(tiny_data_root),
        ann_file=str(tiny_data_root / 'openscene_mini_train.pkl'), pipeline=pipeline,
        queue_length=3))
    base = build(tiny_data_root, queue_length=3)[2]['data_samples']['lidar2img']  # 80x45
    np.random.seed(0)
    shapes = set()
    for _ in range(8):
        item = dataset[2]  # stacking the queue needs one image size
        height, width = item['inputs']['imgs'].shape[-2:]
        shapes.add((height, width))
        lidar2img = item['data_samples']['lidar2img']
        np.testing.assert_allclose(lidar2img[:, :, 0], base[:, :, 0] * width / 80, rtol=1e-5)
        np.testing.assert_allclose(lidar2img[:, :, 1], base[:, :, 1] * height / 45, rtol=1e-5)
    assert shapes == {(22, 40), (45, 80)}


def test_subsets_are_refused(tiny_data_root):
    with pytest.raises(NotImplementedError, match='cannot be subset'):
        build(tiny_data_root).get_subset([1, 0])
