"""Synthetic OpenScene generator through its command line: on-disk layout and metadata, labels,
lidar sweeps that agree with the labels, and determinism (tests/test_synthetic_world.py checks the
world's parts on hand-made scenes)."""
import colorsys
import glob
import os
import pickle
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from occnet.datasets.synthetic import generate_dataset
from occnet.datasets.synthetic.rig import camera_rotation
from occnet.descriptions import OPENSCENE
from occnet.geometry import (dense_to_sparse, index1d_to_xyz, lidar2img_matrix,
                             points_to_voxel_indices, pose_matrix, project_points, sparse_to_dense,
                             voxel_centers, xyz_to_index1d)

CAMERA_NAMES, CLASS_NAMES = OPENSCENE.camera_names, OPENSCENE.class_names
FREE_INDEX, GRID_SHAPE = OPENSCENE.free_index, OPENSCENE.grid_shape
POINT_CLOUD_RANGE, VOXEL_SIZE = OPENSCENE.point_cloud_range, OPENSCENE.voxel_size
BACKGROUND_INDEX = CLASS_NAMES.index('background')
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_LOGS, FRAMES_PER_LOG, FRAMES_PER_SCENE, IMAGE_SIZE = 2, 4, 3, (160, 90)
NUPLAN_NAMES = {'vehicle', 'bicycle', 'pedestrian', 'traffic_cone', 'barrier', 'czone_sign',
                'generic_object'}
HEX16 = re.compile(r'^[0-9a-f]{16}$')
GROUND_LAYER = 3  # OpenScene's grid: ground surface at lidar z = -2.0 m (top of layer 3)
NUM_VOXELS = int(np.prod(GRID_SHAPE))


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """Tiny dataset written through the CLI (2 logs x 4 frames, scenes of 3 frames, lidar on)."""
    out_dir = tmp_path_factory.mktemp('synthetic')
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, 'tools', 'create_synthetic_openscene.py'),
         '--out-dir', str(out_dir), '--num-logs', str(NUM_LOGS), '--frames-per-log',
         str(FRAMES_PER_LOG), '--frames-per-scene', str(FRAMES_PER_SCENE), '--image-size',
         *map(str, IMAGE_SIZE), '--seed', '0', '--with-lidar'],
        capture_output=True, text=True, check=True)
    assert f'{NUM_LOGS} logs, {NUM_LOGS * 2} scenes, {NUM_LOGS * FRAMES_PER_LOG} frames' \
        in result.stdout
    logs = {}
    for path in sorted(glob.glob(str(out_dir / 'openscene-v1.1/meta_datas/mini/*.pkl'))):
        with open(path, 'rb') as f:
            logs[os.path.basename(path)[:-4]] = pickle.load(f)
    with open(out_dir / 'openscene-v1.0/meta_datas/meta_data_mini.pkl', 'rb') as f:
        v10 = pickle.load(f)
    return {'root': out_dir, 'logs': logs, 'v10': v10}


def frames(dataset):
    return [info for infos in dataset['logs'].values() for info in infos]


def load_labels(dataset, info):
    v10 = {i['token']: i for i in dataset['v10']['infos']}[info['token']]
    root = dataset['root'] / 'openscene-v1.0'
    return tuple(np.load(root / v10[key]) for key in
                 ('occ_gt_final_path', 'flow_gt_final_path', 'occ_invalid_path'))


def load_image(dataset, info, cam):
    path = dataset['root'] / 'openscene-v1.1/sensor_blobs/mini' / info['cams'][cam]['data_path']
    image = cv2.imread(str(path))
    assert image is not None, f'missing {path}'
    return image[..., ::-1]


def hsv(rgb):
    """Hue in degrees, saturation and value in [0, 1] of an RGB (0-255) triple."""
    h, s, v = colorsys.rgb_to_hsv(*(np.asarray(rgb, dtype=np.float64) / 255.0))
    return h * 360.0, s, v


def test_rig_convention():
    rot = camera_rotation(0.0, 0.0, 0.0)
    # Columns are the camera axes in the lidar frame: x right = -y, y down = -z, z forward = +x.
    np.testing.assert_allclose(rot, [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    left = camera_rotation(np.pi / 2, 0.0, 0.0)
    np.testing.assert_allclose(left[:, 2], [0, 1, 0], atol=1e-12)
    down = camera_rotation(0.0, np.deg2rad(10), 0.0)
    assert down[2, 2] < 0  # pitched cameras look slightly down


def voxel_of(point):
    """Integer [x, y, z] voxel coordinates of a lidar point (metres)."""
    offset = np.asarray(point) - np.asarray(POINT_CLOUD_RANGE[:3])
    return tuple(int(v) for v in np.floor(offset / VOXEL_SIZE))


def test_layout_and_v11_keys(dataset):
    root = dataset['root']
    assert len(dataset['logs']) == NUM_LOGS
    for log_name, infos in dataset['logs'].items():
        assert re.match(r'^\d{4}(\.\d{2}){5}_veh-\d+_\d{5}_\d{5}$', log_name)
        assert isinstance(infos, list) and len(infos) == FRAMES_PER_LOG
        timestamps = [info['timestamp'] for info in infos]
        assert np.all(np.diff(timestamps) == 500_000)
        for info in infos:
            assert HEX16.match(info['token']) and info['log_name'] == log_name
            assert isinstance(info['frame_idx'], int) and isinstance(info['timestamp'], int)
            for key in ('log_token', 'scene_token'):
                assert HEX16.match(info[key])
            assert info['vehicle_name'] in log_name and re.match(r'^veh-\d+$', info['vehicle_name'])
            assert info['map_location'] in {'las_vegas', 'pittsburgh', 'boston', 'singapore'}
            assert re.match(r'^log-\d{4}-scene-\d{4}$', info['scene_name'])
            assert info['roadblock_ids'] and all(isinstance(r, str) for r in info['roadblock_ids'])
            assert info['lidar_path'] == f"{log_name}/MergedPointCloud/{info['token']}.pcd"
            assert (root / 'openscene-v1.1/sensor_blobs/mini' / info['lidar_path']).is_file()
            can_bus = info['can_bus']
            assert can_bus.shape == (18,) and can_bus.dtype == np.float64
            assert np.all(can_bus[16:] == 0) and 4.0 <= can_bus[10] <= 10.5
            np.testing.assert_allclose(can_bus[:3], info['ego2global_translation'])
            np.testing.assert_allclose(can_bus[3:7], info['ego2global_rotation'])
            assert can_bus[0] > 300_000  # UTM-like global coordinates
            np.testing.assert_allclose(info['lidar2ego_translation'], [1.5, 0.0, 2.0])
            assert len(info['lidar2ego_rotation']) == 4
            np.testing.assert_allclose(info['ego2global'], pose_matrix(
                info['ego2global_translation'], info['ego2global_rotation']), atol=1e-9)
            np.testing.assert_allclose(info['lidar2ego'], pose_matrix(
                info['lidar2ego_translation'], info['lidar2ego_rotation']))
            np.testing.assert_allclose(info['lidar2global'],
                                       info['ego2global'] @ info['lidar2ego'])
            assert len(info['ego_dynamic_state']) == 4
            assert all(isinstance(light, tuple) and isinstance(light[0], int)
                       and isinstance(light[1], bool) for light in info['traffic_lights'])
            command = info['driving_command']
            assert command.shape == (4,) and command.dtype.kind == 'i' and command.sum() == 1
            assert set(info['cams']) == set(CAMERA_NAMES)
            for cam, cam_info in info['cams'].items():
                assert cam_info['data_path'] == f"{log_name}/{cam}/{info['token']}.jpg"
                rot = cam_info['sensor2lidar_rotation']
                assert rot.shape == (3, 3) and cam_info['sensor2lidar_translation'].shape == (3,)
                np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-9)
                assert cam_info['cam_intrinsic'].shape == (3, 3)
                assert cam_info['distortion'].shape == (5,) and not cam_info['distortion'].any()
                assert load_image(dataset, info, cam).shape == (IMAGE_SIZE[1], IMAGE_SIZE[0], 3)
            anns = info['anns']
            num = len(anns['gt_names'])
            assert num > 0 and set(anns['gt_names']) <= NUPLAN_NAMES
            assert anns['gt_boxes'].shape == (num, 7) and anns['gt_velocity_3d'].shape == (num, 3)
            assert len(anns['instance_tokens']) == len(anns['track_tokens']) == num
            assert np.all(np.abs(anns['gt_boxes'][:, 6]) <= np.pi)
        # Every class occurs in every log.
        assert {name for info in infos for name in info['anns']['gt_names']} == NUPLAN_NAMES


def test_scenes_chain_and_camera_order(dataset):
    first_cams = set()
    for infos in dataset['logs'].values():
        scenes = {}
        for info in infos:
            scenes.setdefault(info['scene_token'], []).append(info)
            first_cams.add(next(iter(info['cams'])))
        assert [len(s) for s in scenes.values()] == [FRAMES_PER_SCENE, 1]
        assert len({s[0]['scene_name'] for s in scenes.values()}) == len(scenes)
        for scene in scenes.values():
            assert [info['frame_idx'] for info in scene] == list(range(len(scene)))
            assert scene[0]['sample_prev'] is None and scene[-1]['sample_next'] is None
            for prev, cur in zip(scene[:-1], scene[1:]):
                assert prev['sample_next'] == cur['token'] and cur['sample_prev'] == prev['token']
    assert first_cams != {'CAM_F0'}  # the release's camera order is arbitrary


def test_v10_metadata_and_label_files(dataset):
    v10 = dataset['v10']
    assert v10['metadata'] == {'version': 'v1.0-mini'}
    v11_frames = frames(dataset)
    assert [i['token'] for i in v10['infos']] == [i['token'] for i in v11_frames]
    for v10_info, v11_info in zip(v10['infos'], v11_frames):
        assert set(v10_info) - set(v11_info) == {'occ_gt_final_path', 'flow_gt_final_path',
                                                 'occ_invalid_path'}
        prefix = f"occupancy/mini/{v11_info['scene_name']}/occ_gt/{v11_info['frame_idx']:03d}_"
        assert v10_info['occ_gt_final_path'] == prefix + 'occ_final.npy'
        assert v10_info['flow_gt_final_path'] == prefix + 'flow_final.npy'
        assert v10_info['occ_invalid_path'] == prefix + 'occ_invalid.npy'


def test_label_files(dataset):
    moving_voxels = 0
    for info in frames(dataset):
        occ, flow, invalid = load_labels(dataset, info)
        assert occ.dtype == np.int64 and occ.ndim == 2 and occ.shape[1] == 2
        assert np.all(np.diff(occ[:, 0]) > 0)  # sorted, unique
        assert occ[:, 1].min() >= 0 and occ[:, 1].max() == BACKGROUND_INDEX
        assert not np.isin(occ[:, 1], [1, 2, 3, FREE_INDEX]).any()
        dense = sparse_to_dense(occ)
        np.testing.assert_array_equal(dense_to_sparse(dense), occ)
        # The ground fills layer 3 everywhere; nothing lies below it; background has height
        # (raised sidewalks and terrain in layer 4, buildings, trees and poles above).
        assert np.all(dense[:, :, GROUND_LAYER] == BACKGROUND_INDEX)
        assert np.all(dense[:, :, :GROUND_LAYER] == FREE_INDEX)
        background_layers = (dense == BACKGROUND_INDEX).sum(axis=(0, 1))
        assert background_layers[GROUND_LAYER + 1] > 2000 and background_layers[-1] > 100
        assert (dense[:, :, GROUND_LAYER + 1] < BACKGROUND_INDEX).sum() > 50
        assert flow.dtype == np.float32 and flow.shape == (len(occ), 2)
        assert not flow[occ[:, 1] == BACKGROUND_INDEX].any()
        assert invalid.dtype == np.int64 and invalid.ndim == 1
        assert np.all(np.diff(invalid) > 0) and invalid[0] >= 0 and invalid[-1] < NUM_VOXELS
        below_ground = np.arange(GROUND_LAYER * GRID_SHAPE[0] * GRID_SHAPE[1])
        assert np.isin(below_ground, invalid).all()
        assert 0.1 < 1 - len(invalid) / NUM_VOXELS < 0.9  # most of what is above ground is seen

        # Flow: the voxel at each annotated box centre carries that box's velocity (lidar and
        # ego axes coincide), static boxes carry none, and every non-zero flow (away from the
        # grid border, where boxes outside the annotated range reach in) is a moving box's.
        anns = info['anns']
        centres_lidar = anns['gt_boxes'][:, :3] - info['lidar2ego_translation']
        index = {int(i): row for row, i in enumerate(occ[:, 0])}
        checked = {'moving': 0, 'static': 0}
        for centre, velocity, name in zip(centres_lidar, anns['gt_velocity_3d'], anns['gt_names']):
            row = index.get(int(xyz_to_index1d([voxel_of(centre)])[0]))
            if row is None or CLASS_NAMES[occ[row, 1]] != name:
                continue
            np.testing.assert_allclose(flow[row], velocity[:2], atol=1e-4)
            checked['moving' if np.linalg.norm(velocity) > 0 else 'static'] += 1
        assert checked['static'] > 5
        speeds = np.linalg.norm(anns['gt_velocity_3d'], axis=1)
        moving_velocities = anns['gt_velocity_3d'][speeds > 0, :2]
        xy = voxel_centers()[tuple(index1d_to_xyz(occ[:, 0]).T)][:, :2]
        rows = np.flatnonzero(np.all(np.abs(xy) < 45.0, axis=1) & np.any(flow != 0, axis=1))
        if len(rows):
            error = np.abs(flow[rows, None] - moving_velocities[None]).max(axis=2).min(axis=1)
            assert np.all(error < 1e-4)
        moving_voxels += len(rows)
    assert moving_voxels > 100


def test_lidar_pcd(dataset):
    """Ray-cast sweeps in the release's PCD layout: each return's voxel is occupied in the
    frame's labels, and the returns cover the ground, the structures and the objects."""
    for info in frames(dataset)[::3]:
        occ, _, _ = load_labels(dataset, info)
        dense = sparse_to_dense(occ)
        pcd = dataset['root'] / 'openscene-v1.1/sensor_blobs/mini' / info['lidar_path']
        raw = pcd.read_bytes()
        header, data = raw.split(b'DATA binary\n', 1)
        assert b'FIELDS x y z intensity ring lidar_info' in header
        assert b'TYPE F F F F F F' in header and b'VIEWPOINT 0 0 0 1 0 0 0' in header
        points = np.frombuffer(data, dtype='<f4').reshape(-1, 6)
        assert f'POINTS {len(points)}'.encode() in header and len(points) > 15000
        distance = np.linalg.norm(points[:, :3], axis=1)
        assert distance.max() <= 80.0 + 1e-3 and distance.min() > 2.0
        assert set(np.unique(points[:, 4])) == set(range(32)) and not points[:, 5].any()
        assert 0 < points[:, 3].min() and points[:, 3].max() <= 255
        idx, inside = points_to_voxel_indices(points[:, :3] + 1e-3 * points[:, :3]
                                              / distance[:, None])
        hit = dense[tuple(idx[inside].T)]
        assert np.all(hit != FREE_INDEX)
        assert (hit < BACKGROUND_INDEX).sum() > 100  # objects
        above_ground = idx[inside, 2] > GROUND_LAYER + 1
        assert (above_ground & (hit == BACKGROUND_INDEX)).sum() > 500  # structures


def test_cameras_look_where_the_rig_says(dataset):
    cams = frames(dataset)[0]['cams']
    width, height = IMAGE_SIZE
    for cam, point in (('CAM_F0', [10.0, 0.0, 0.0]), ('CAM_L1', [0.0, 10.0, 0.0]),
                       ('CAM_B0', [-10.0, 0.0, 0.0]), ('CAM_R1', [0.0, -10.0, 0.0])):
        uv, depth = project_points(np.array([point]), lidar2img_matrix(cams[cam]))
        assert depth[0] > 8.5
        assert abs(uv[0, 0] - width / 2) < 0.08 * width
        assert abs(uv[0, 1] - height / 2) < 0.15 * height


def test_no_object_overlaps(dataset):
    ego = np.array([[-1.05, -1.05], [3.95, -1.05], [3.95, 1.05], [-1.05, 1.05]], np.float32)

    def footprint(box):
        x, y, _, length, width, _, yaw = box
        local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [length / 2, width / 2]
        rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
        return (local @ rot.T + [x, y]).astype(np.float32)

    for info in frames(dataset):
        polygons = [footprint(box) for box in info['anns']['gt_boxes']]
        for i, poly in enumerate(polygons):
            assert cv2.intersectConvexConvex(poly, ego)[0] < 1e-6
            for other in polygons[i + 1:]:
                assert cv2.intersectConvexConvex(poly, other)[0] < 1e-6


def test_determinism(dataset, tmp_path):
    # same seed, generated by 2 worker processes instead of 1: byte-identical output
    same = tmp_path / 'same'
    generate_dataset(same, num_logs=NUM_LOGS, frames_per_log=FRAMES_PER_LOG,
                     image_size=IMAGE_SIZE, seed=0, frames_per_scene=FRAMES_PER_SCENE,
                     with_lidar=True, log=None, workers=2)
    files = sorted(os.path.relpath(p, dataset['root'])
                   for p in glob.glob(str(dataset['root'] / '**' / '*.*'), recursive=True))
    assert files == sorted(os.path.relpath(p, same)
                           for p in glob.glob(str(same / '**' / '*.*'), recursive=True))
    for rel in files:
        if rel.endswith(('.pkl', '.npy', '.pcd', '.jpg')):
            assert (dataset['root'] / rel).read_bytes() == (same / rel).read_bytes(), rel

    other = tmp_path / 'other'
    generate_dataset(other, num_logs=1, frames_per_log=2, image_size=(64, 36), seed=1,
                     frames_per_scene=FRAMES_PER_SCENE, label_digits=4, log=None)
    with open(other / 'openscene-v1.0/meta_datas/meta_data_mini.pkl', 'rb') as f:
        other_infos = pickle.load(f)['infos']
    first = frames(dataset)[0]
    assert other_infos[0]['token'] != first['token']
    assert other_infos[0]['log_name'] != first['log_name']
    assert other_infos[1]['occ_gt_final_path'].endswith('/occ_gt/0001_occ_final.npy')
    other_occ = np.load(other / 'openscene-v1.0' / other_infos[0]['occ_gt_final_path'])
    assert not np.array_equal(other_occ, load_labels(dataset, first)[0])
