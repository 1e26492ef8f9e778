"""occnet's own Occ3D-nuScenes infos, written from the nuScenes tables (nuscenes-devkit).

`frames_from_nuscenes` walks each scene's key frames in order and keeps those with an Occ3D
label (`gts/<scene_name>/<sample_token>/labels.npz` under the Occ3D root), as the CVPR 2023
challenge's converter does. Each becomes an occnet frame (occ3d.occ3d_frame's keys), so
the dataset reads it like the published flavours. Camera-to-lidar transforms go through
each camera's own ego pose at its timestamp: camera -> ego(t_cam) -> global ->
ego(t_lidar) -> lidar. `can_bus` holds the ego pose (translation, quaternion [w, x, y, z])
in its first 7 entries and zeros elsewhere: the CAN-bus expansion is not read.
"""
import os

import numpy as np

from occnet.datasets.occ3d import camera_to_lidar
from occnet.geometry import pose_matrix


def _pose(nusc, sample_data):
    calibrated = nusc.get('calibrated_sensor', sample_data['calibrated_sensor_token'])
    ego = nusc.get('ego_pose', sample_data['ego_pose_token'])
    return calibrated, ego


def scene_samples(nusc, scene):
    """The key frames (sample records) of one scene record, in order."""
    samples, token = [], scene['first_sample_token']
    while token:
        sample = nusc.get('sample', token)
        samples.append(sample)
        token = sample['next']
    return samples


def label_path(occ3d_root, nuscenes_root, scene_name, token):
    """(path for the infos, path on disk) of a sample's labels.npz: relative to the nuScenes
    root when the Occ3D root lies inside it, absolute otherwise."""
    on_disk = os.path.join(occ3d_root, 'gts', scene_name, token, 'labels.npz')
    relative = os.path.relpath(os.path.abspath(on_disk), os.path.abspath(nuscenes_root))
    return (on_disk if relative.startswith('..') else relative.replace(os.sep, '/')), on_disk


def frame_from_sample(nusc, sample, scene_name, label, camera_names, frame_idx):
    """One occnet frame of a nuScenes sample record."""
    lidar_data = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
    calibrated, ego = _pose(nusc, lidar_data)
    lidar2ego = pose_matrix(calibrated['translation'], calibrated['rotation'])
    ego2global = pose_matrix(ego['translation'], ego['rotation'])
    cams = {}
    for name in camera_names:
        cam_data = nusc.get('sample_data', sample['data'][name])
        cam_calibrated, cam_ego = _pose(nusc, cam_data)
        rotation, translation = camera_to_lidar(
            dict(sensor2ego_translation=cam_calibrated['translation'],
                 sensor2ego_rotation=cam_calibrated['rotation'],
                 ego2global_translation=cam_ego['translation'],
                 ego2global_rotation=cam_ego['rotation']), lidar2ego, ego2global)
        cams[name] = dict(data_path=cam_data['filename'], sensor2lidar_rotation=rotation,
                          sensor2lidar_translation=translation,
                          cam_intrinsic=np.asarray(cam_calibrated['camera_intrinsic'],
                                                   dtype=np.float64))
    can_bus = np.zeros(18)
    can_bus[:3], can_bus[3:7] = ego['translation'], ego['rotation']
    return dict(token=sample['token'], scene_token=sample['scene_token'],
                scene_name=scene_name, timestamp=int(sample['timestamp']),
                frame_idx=frame_idx, can_bus=can_bus, lidar_path=lidar_data['filename'],
                lidar2ego=lidar2ego, ego2global=ego2global,
                lidar2global=ego2global @ lidar2ego, cams=cams, occ_gt_path=label,
                sample_prev=sample['prev'] or None, sample_next=sample['next'] or None)


def frames_from_nuscenes(nusc, occ3d_root, nuscenes_root, scene_names, camera_names,
                         progress=None):
    """(frames, skipped): occnet frames of the named scenes' key frames that have an Occ3D
    label, scene after scene, and how many key frames had none. `progress(done, total)` is
    called after each scene."""
    wanted = set(scene_names)
    scenes = [scene for scene in nusc.scene if scene['name'] in wanted]
    frames, skipped = [], 0
    for done, scene in enumerate(scenes, 1):
        for frame_idx, sample in enumerate(scene_samples(nusc, scene)):
            label, on_disk = label_path(occ3d_root, nuscenes_root, scene['name'],
                                        sample['token'])
            if not os.path.isfile(on_disk):
                skipped += 1
                continue
            frames.append(frame_from_sample(nusc, sample, scene['name'], label,
                                            camera_names, frame_idx))
        if progress:
            progress(done, len(scenes))
    return frames, skipped
