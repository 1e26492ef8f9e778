"""Occ3D-nuScenes: both infos flavours read from small fixtures, the projection of an
ego-frame grid point worked by hand, and the label reader's checks."""
import pickle

import numpy as np
import pytest

from occnet.datasets.infos import DataError
from occnet.datasets.occ3d import (grid2img_matrix, load_occ3d_infos, load_occ3d_label,
                                   root_relative)
from occnet.descriptions import OCC3D_NUSCENES

CAMS = OCC3D_NUSCENES.camera_names
Q_Z90 = [np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)]  # [w, x, y, z]: +90 degrees about z
# camera looking along lidar +x: camera x (right) = lidar -y, camera y (down) = lidar -z
FRONT = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
INTRINSIC = np.array([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]])


def challenge_frame(token='tok0', prev='', scene='scene-0061'):
    cams = {name: dict(data_path=f'./data/nuscenes/samples/{name}/{token}.jpg',
                       sensor2lidar_rotation=FRONT, sensor2lidar_translation=np.zeros(3),
                       cam_intrinsic=INTRINSIC, sensor2ego_translation=[0.0, 0, 0],
                       sensor2ego_rotation=[1.0, 0, 0, 0]) for name in CAMS}
    return dict(token=token, prev=prev, next='', scene_token='st0', frame_idx=0,
                timestamp=1_533_151_603_547_590, can_bus=np.arange(18.0),
                lidar_path=f'/abs/data/nuscenes/samples/LIDAR_TOP/{token}.pcd.bin',
                lidar2ego_translation=[1.0, 0.0, 2.0], lidar2ego_rotation=Q_Z90,
                ego2global_translation=[100.0, 200.0, 0.0], ego2global_rotation=[1.0, 0, 0, 0],
                occ_gt_path=f'gts/{scene}/{token}/labels.npz', cams=cams)


def bevdet_frame(token='tok0'):
    """The BEVDet flavour: a label folder, and cameras with their own ego pose instead of
    sensor2lidar (here the lidar's pose, so camera -> lidar is FRONT again)."""
    frame = challenge_frame(token)
    frame['occ_path'] = f'./data/nuscenes/gts/scene-0061/{token}'
    del frame['occ_gt_path']
    lidar2ego = np.eye(4)
    lidar2ego[:3, :3] = [[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]  # Q_Z90 as a matrix
    lidar2ego[:3, 3] = [1.0, 0.0, 2.0]
    sensor2ego = lidar2ego.copy()
    sensor2ego[:3, :3] = lidar2ego[:3, :3] @ FRONT
    for cam in frame['cams'].values():
        del cam['sensor2lidar_rotation'], cam['sensor2lidar_translation']
        cam.update(sensor2ego_rotation=sensor2ego[:3, :3],
                   sensor2ego_translation=sensor2ego[:3, 3],
                   ego2global_translation=[100.0, 200.0, 0.0],
                   ego2global_rotation=[1.0, 0, 0, 0])
    return frame


def write_infos(path, frames):
    with open(path, 'wb') as f:
        pickle.dump(dict(infos=frames, metadata=dict(version='v1.0-trainval')), f)
    return str(path)


@pytest.mark.parametrize('make', [challenge_frame, bevdet_frame])
def test_both_infos_flavours_read_into_occnet_frames(tmp_path, make):
    frames = load_occ3d_infos(write_infos(tmp_path / 'infos.pkl', [make()]), CAMS)
    frame = frames[0]
    assert frame['occ_gt_path'] == 'gts/scene-0061/tok0/labels.npz'
    assert frame['scene_name'] == 'scene-0061' and frame['sample_prev'] is None
    assert frame['lidar_path'] == 'samples/LIDAR_TOP/tok0.pcd.bin'
    assert list(frame['cams']) == list(CAMS)
    assert frame['cams']['CAM_BACK']['data_path'] == 'samples/CAM_BACK/tok0.jpg'
    assert np.allclose(frame['cams']['CAM_FRONT']['sensor2lidar_rotation'], FRONT)
    assert np.allclose(frame['lidar2global'][:3, 3], [101.0, 200.0, 2.0])
    assert frame['can_bus'].shape == (18,)


@pytest.mark.parametrize('make', [challenge_frame, bevdet_frame])
def test_ego_frame_grid_point_projects_by_hand(tmp_path, make):
    """Ego point (-1, 10, 3): minus lidar2ego's translation (1, 0, 2) is (-2, 10, 1), turned
    -90 degrees about z it is (10, 2, 1) in the lidar frame: 10 m in front of the camera,
    2 m to its left (camera x = -2), 1 m up (camera y = -1), so it lands at
    u = 50 + 100 * -2 / 10 = 30, v = 40 + 100 * -1 / 10 = 30, depth 10."""
    frame = load_occ3d_infos(write_infos(tmp_path / 'infos.pkl', [make()]), CAMS)[0]
    projected = grid2img_matrix(frame, 'CAM_FRONT') @ np.array([-1.0, 10.0, 3.0, 1.0])
    assert np.allclose(projected[:2] / projected[2], [30.0, 30.0])
    assert np.isclose(projected[2], 10.0)
    half = grid2img_matrix(frame, 'CAM_FRONT', scale=(0.5, 0.5)) @ [-1.0, 10.0, 3.0, 1.0]
    assert np.allclose(half[:2] / half[2], [15.0, 15.0])


def test_a_frame_without_label_path_or_key_is_named(tmp_path):
    frame = challenge_frame('tok9')
    del frame['occ_gt_path']
    with pytest.raises(DataError, match="'tok9'.*occ_gt_path.*occ_path"):
        load_occ3d_infos(write_infos(tmp_path / 'a.pkl', [frame]), CAMS)
    frame = challenge_frame('tok8')
    del frame['cams']['CAM_BACK_LEFT']
    with pytest.raises(DataError, match=r"a\.pkl.*'tok8'.*CAM_BACK_LEFT"):
        load_occ3d_infos(write_infos(tmp_path / 'a.pkl', [frame]), CAMS)


def test_root_relative_paths():
    assert root_relative('./data/nuscenes/samples/CAM_FRONT/x.jpg') == 'samples/CAM_FRONT/x.jpg'
    assert root_relative('/d/nus/sweeps/LIDAR_TOP/y.bin') == 'sweeps/LIDAR_TOP/y.bin'
    assert root_relative('gts/scene-1/t') == 'gts/scene-1/t'
    assert root_relative('other/place.jpg') == 'other/place.jpg'


def label_arrays(top=17):
    semantics = np.full((200, 200, 16), 17, dtype=np.uint8)
    semantics[0, 0, 0], semantics[199, 5, 15] = 16, top
    masks = np.zeros((200, 200, 16), dtype=np.uint8)
    masks[0, 0, :] = 1
    return dict(semantics=semantics, mask_lidar=masks, mask_camera=masks)


def test_label_reader_and_its_errors(tmp_path):
    good = tmp_path / 'labels.npz'
    np.savez_compressed(good, **label_arrays())
    semantics, mask_lidar, mask_camera = load_occ3d_label(str(good), OCC3D_NUSCENES)
    assert semantics.dtype == np.uint8 and semantics[0, 0, 0] == 16
    assert mask_camera.dtype == bool and mask_camera.sum() == 16
    bad = tmp_path / 'bad_class.npz'
    np.savez_compressed(bad, **label_arrays(top=18))
    with pytest.raises(DataError, match='bad_class.npz.*class 18.*0..17'):
        load_occ3d_label(str(bad), OCC3D_NUSCENES)
    arrays = label_arrays()
    arrays['mask_camera'] = arrays['mask_camera'][:, :, :8]
    np.savez_compressed(tmp_path / 'shape.npz', **arrays)
    with pytest.raises(DataError, match=r'shape.npz.*mask_camera.*\(200, 200, 8\)'):
        load_occ3d_label(str(tmp_path / 'shape.npz'), OCC3D_NUSCENES)
    arrays = label_arrays()
    del arrays['mask_lidar']
    np.savez_compressed(tmp_path / 'keys.npz', **arrays)
    with pytest.raises(DataError, match=r"keys.npz lacks \['mask_lidar'\]"):
        load_occ3d_label(str(tmp_path / 'keys.npz'), OCC3D_NUSCENES)
    (tmp_path / 'cut.npz').write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match='cut.npz.*truncated'):
        load_occ3d_label(str(tmp_path / 'cut.npz'), OCC3D_NUSCENES)
    with pytest.raises(DataError, match='not found.*gone.npz'):
        load_occ3d_label(str(tmp_path / 'gone.npz'), OCC3D_NUSCENES)


class FakeNuScenes:
    """The part of nuscenes-devkit's NuScenes that frames_from_nuscenes reads: one scene of
    two key frames; the cameras' ego pose is 1 m further along global x than the lidar's."""

    def __init__(self):
        self.tables = {}
        self.scene = [dict(token='sc0', name='scene-0007', first_sample_token='s0')]
        self.add('calibrated_sensor', 'lidar_cal', translation=[0.0, 0, 2],
                 rotation=[1.0, 0, 0, 0])
        self.add('calibrated_sensor', 'cam_cal', translation=[1.0, 0, 1.5],
                 rotation=[1.0, 0, 0, 0], camera_intrinsic=INTRINSIC.tolist())
        self.add('ego_pose', 'lidar_ego', translation=[10.0, 0, 0], rotation=[1.0, 0, 0, 0])
        self.add('ego_pose', 'cam_ego', translation=[11.0, 0, 0], rotation=[1.0, 0, 0, 0])
        for i, (prev, nxt) in enumerate((('', 's1'), ('s0', ''))):
            data = {'LIDAR_TOP': f'l{i}'}
            self.add('sample_data', f'l{i}', filename=f'samples/LIDAR_TOP/{i}.pcd.bin',
                     calibrated_sensor_token='lidar_cal', ego_pose_token='lidar_ego')
            for name in CAMS:
                data[name] = f'{name}{i}'
                self.add('sample_data', f'{name}{i}', filename=f'samples/{name}/{i}.jpg',
                         calibrated_sensor_token='cam_cal', ego_pose_token='cam_ego')
            self.add('sample', f's{i}', token=f's{i}', timestamp=1000 + i, prev=prev,
                     next=nxt, scene_token='sc0', data=data)

    def add(self, table, key, **record):
        self.tables.setdefault(table, {})[key] = record

    def get(self, table, token):
        return self.tables[table][token]


def test_own_infos_from_the_nuscenes_tables(tmp_path):
    """Only the key frame with a label is kept; the camera-to-lidar translation goes through
    both ego poses: camera at global (11 + 1, 0, 1.5), the lidar at (10, 0, 0 + 2), so
    the camera sits at (2, 0, -0.5) in the lidar frame."""
    from occnet.datasets.occ3d_create import frames_from_nuscenes
    label = tmp_path / 'gts' / 'scene-0007' / 's1' / 'labels.npz'
    label.parent.mkdir(parents=True)
    np.savez_compressed(label, **label_arrays())
    frames, skipped = frames_from_nuscenes(FakeNuScenes(), str(tmp_path), str(tmp_path),
                                           ['scene-0007'], CAMS)
    assert skipped == 1 and [f['token'] for f in frames] == ['s1']
    frame = frames[0]
    assert frame['occ_gt_path'] == 'gts/scene-0007/s1/labels.npz'
    assert frame['frame_idx'] == 1 and frame['sample_prev'] == 's0'
    assert np.allclose(frame['cams']['CAM_FRONT']['sensor2lidar_translation'], [2, 0, -0.5])
    assert np.allclose(frame['lidar2global'][:3, 3], [10, 0, 2])
    read = load_occ3d_infos(write_infos(tmp_path / 'own.pkl', frames), CAMS)[0]
    assert read['cams']['CAM_BACK']['data_path'] == 'samples/CAM_BACK/1.jpg'
    outside = frames_from_nuscenes(FakeNuScenes(), str(tmp_path), str(tmp_path / 'nus'),
                                   ['scene-0007'], CAMS)[0][0]['occ_gt_path']
    assert outside == str(label)  # an Occ3D root outside the nuScenes root: absolute path
