"""Generates synthetic logs and writes them in the Occ3D-nuScenes layout, under a nuScenes-like
root:

    samples/<CAM>/<token>.jpg                 the 6 cameras of OCC3D_NUSCENES
    samples/LIDAR_TOP/<token>.pcd.bin         (with_lidar) (N, 5) float32 x y z intensity ring,
                                              lidar frame
    gts/<scene_name>/<token>/labels.npz       semantics, mask_lidar, mask_camera: uint8
                                              (200, 200, 16) [x, y, z] in the ego grid
    occ_infos_temporal_{train,val}.pkl        the CVPR 2023 challenge's infos:
                                              {'infos': [...], 'metadata': {'version': ...}}

The worlds are writer.py's (world.py), with objects spawned to fill the Occ3D grid, seen by a
nuScenes-like vehicle (rig.py: 6 cameras placed in the ego frame, the lidar 1.84 m up and
turned -90 degrees about z as nuScenes' LIDAR_TOP). One set of parts per frame: voxelised in
the ego frame for the labels, moved into the lidar frame for the images and the sweep.
Labels and masks: occ3d_labels.py. Validation logs are the last `val_logs` logs, whole.
"""
import time
from pathlib import Path

import numpy as np
from pyquaternion import Quaternion

from occnet.datasets.synthetic.lidar import LidarScanner, nuscenes_bin_bytes
from occnet.datasets.synthetic.occ3d_labels import (camera_mask, lidar_mask, object_classes,
                                                    occ3d_semantics, write_labels)
from occnet.datasets.synthetic.parts import transform_parts
from occnet.datasets.synthetic.render import RigRenderer
from occnet.datasets.synthetic.rig import lidar2ego_matrix, lidar2ego_quaternion, make_rig
from occnet.datasets.synthetic.scene import frame_parts
from occnet.datasets.synthetic.voxelize import voxelize_frame
from occnet.datasets.synthetic.world import frame_time, make_world
from occnet.datasets.synthetic.writer import (FRAME_INTERVAL_US, Progress, generate_logs,
                                              write_jpeg, write_pickle)
from occnet.descriptions import OCC3D_NUSCENES
from occnet.geometry import pose_matrix

VERSION = 'v1.0-synthetic'
INFOS_NAME = 'occ_infos_temporal_{split}.pkl'
LIDAR_NAME = 'LIDAR_TOP'
FIRST_TIMESTAMP_US = 1_532_400_000_000_000  # 2018-07-24 UTC, when nuScenes was recorded
GRID = OCC3D_NUSCENES


def _token(rng):
    """A nuScenes-style token: 32 hex digits."""
    return rng.bytes(16).hex()


def _yaw_quaternion(yaw):
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def _quaternion(rotation):
    """[w, x, y, z] list of a (3, 3) rotation matrix."""
    return [float(v) for v in Quaternion(matrix=np.asarray(rotation), atol=1e-9).elements]


def label_path(scene_name, token):
    """The frame's label file, relative to the root (the challenge's `occ_gt_path`)."""
    return f'gts/{scene_name}/{token}/labels.npz'


def _cams_entry(rng, cams, token, ego_pose, timestamp):
    """The frame's `cams` dict in OCC3D_NUSCENES.camera_names order (challenge keys)."""
    entry = {}
    for name in GRID.camera_names:
        cam = cams[name]
        entry[name] = {
            'data_path': f'samples/{name}/{token}.jpg', 'type': name,
            'sample_data_token': _token(rng),
            'sensor2ego_translation': [float(v) for v in cam['sensor2ego_translation']],
            'sensor2ego_rotation': _quaternion(cam['sensor2ego_rotation']),
            'ego2global_translation': list(ego_pose[0]),
            'ego2global_rotation': list(ego_pose[1]), 'timestamp': timestamp,
            'sensor2lidar_rotation': np.array(cam['sensor2lidar_rotation']),
            'sensor2lidar_translation': np.array(cam['sensor2lidar_translation']),
            'cam_intrinsic': np.array(cam['cam_intrinsic'])}
    return entry


def _frame_info(rng, world, cams, scene, frame_idx, token, timestamp):
    """Challenge infos frame of key frame `frame_idx` of a log (prev / next linked later)."""
    ego = world.ego
    rotation = _yaw_quaternion(ego.yaw[frame_idx])
    translation = [float(v) for v in ego.translation[frame_idx]]
    can_bus = np.concatenate([translation, rotation, ego.acceleration[frame_idx],
                              ego.angular_rate[frame_idx], ego.velocity[frame_idx], [0.0, 0.0]])
    lidar_translation, lidar_rotation = lidar2ego_quaternion(GRID)
    return {
        'token': token, 'scene_token': scene['token'], 'scene_name': scene['name'],
        'frame_idx': frame_idx - scene['first_frame'], 'timestamp': timestamp,
        'prev': '', 'next': '', 'can_bus': can_bus, 'sweeps': [],
        'lidar_path': f'samples/{LIDAR_NAME}/{token}.pcd.bin',
        'lidar2ego_translation': [float(v) for v in lidar_translation],
        'lidar2ego_rotation': [float(v) for v in lidar_rotation],
        'ego2global_translation': translation, 'ego2global_rotation': rotation,
        'cams': _cams_entry(rng, cams, token, (translation, rotation), timestamp),
        'occ_gt_path': label_path(scene['name'], token),
    }


def _scenes(rng, log_idx, num_frames, frames_per_scene):
    """Scene (name, token, first frame) of every frame of a log."""
    per_frame = []
    for scene_idx, first in enumerate(range(0, num_frames, frames_per_scene)):
        scene = {'name': f'scene-{log_idx:04d}-{scene_idx:02d}', 'token': _token(rng),
                 'first_frame': first, 'index': scene_idx}
        per_frame += [scene] * len(range(first, min(first + frames_per_scene, num_frames)))
    return per_frame


def _link_scene_neighbours(infos):
    for prev, cur in zip(infos[:-1], infos[1:]):
        if prev['scene_token'] == cur['scene_token']:
            prev['next'], cur['prev'] = cur['token'], prev['token']


def _log_seeds(seed, log_idx):
    """Independent seed sequences of a log's world, rig and metadata (other than writer.py's
    for the same seed: this is another dataset)."""
    return np.random.SeedSequence([seed, log_idx, 3]).spawn(3)


def occ3d_log_world(seed, log_idx, num_frames):
    """The World of log `log_idx` of an Occ3D set generated with `seed` and `num_frames`
    frames per log (objects spawned to fill the ego grid)."""
    return make_world(np.random.default_rng(_log_seeds(seed, log_idx)[0]), num_frames, GRID,
                      grid2ego=np.eye(4))


def render_frame(world, renderer, scanner, frame_idx, classes):
    """Sensors and labels of one key frame.

    Args:
        world: the log's World (occ3d_log_world); renderer: RigRenderer of the log's rig on
            the Occ3D grid; scanner: LidarScanner; frame_idx: key frame; classes: (N,) Occ3D
            class of each object (occ3d_labels.object_classes).
    Returns:
        dict: images (6, H, W, 3) uint8 RGB; pixel_owner (6, H, W) int32 object drawn at each
        pixel, -1 for none; points (N, 6) float32 sweep in the lidar frame; semantics,
        mask_lidar, mask_camera (200, 200, 16) uint8 and owner (200, 200, 16) int32 (object
        index, -1 for none) in the ego grid.
    """
    ego2global = pose_matrix(world.ego.translation[frame_idx],
                             _yaw_quaternion(world.ego.yaw[frame_idx]))
    lidar2ego = lidar2ego_matrix(GRID)
    lidar2global = ego2global @ lidar2ego
    parts = frame_parts(world, frame_time(frame_idx), ego2global)  # ego frame
    _, _, owner, kinds = voxelize_frame(parts, world.layout, ego2global, GRID)
    semantics = occ3d_semantics(owner, kinds, classes)
    lidar_parts = transform_parts(parts, np.linalg.inv(lidar2ego))
    rendered = renderer.render(lidar_parts, world.layout, lidar2global, world.sun_direction)
    points = scanner.scan(lidar_parts, world.layout, lidar2global)
    points_ego = points[:, :3] @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    drawn = rendered.part
    pixel_owner = np.where(drawn >= 0, lidar_parts.owner[np.maximum(drawn, 0)], -1)
    return {'images': rendered.images, 'pixel_owner': pixel_owner.astype(np.int32),
            'points': points, 'semantics': semantics, 'owner': owner,
            'mask_lidar': lidar_mask(lidar2ego[:3, 3], points_ego, GRID),
            'mask_camera': camera_mask(rendered.visible, GRID.grid_shape)}


def _generate_log(out_dir, log_idx, seed, num_frames, image_size, frames_per_scene, with_lidar,
                  on_frame):
    """Generate and write one log; returns its infos frames (challenge flavour)."""
    _, rig_seq, meta_seq = _log_seeds(seed, log_idx)
    world = occ3d_log_world(seed, log_idx, num_frames)
    cams = make_rig(np.random.default_rng(rig_seq), image_size, GRID)
    meta_rng = np.random.default_rng(meta_seq)
    start = FIRST_TIMESTAMP_US + log_idx * 86_400_000_000 + int(meta_rng.integers(36_000_000_000))
    scenes = _scenes(meta_rng, log_idx, num_frames, frames_per_scene)
    tokens = [_token(meta_rng) for _ in range(num_frames)]
    ego2lidar = np.linalg.inv(lidar2ego_matrix(GRID))
    renderer = RigRenderer(cams, image_size, GRID, grid2lidar=ego2lidar, ground_z=0.0)
    scanner = LidarScanner()
    classes = object_classes(world.objects.category, world.objects.size)
    infos = []
    for k in range(num_frames):
        info = _frame_info(meta_rng, world, cams, scenes[k], k, tokens[k],
                           start + k * FRAME_INTERVAL_US)
        frame = render_frame(world, renderer, scanner, k, classes)
        for cam, name in enumerate(GRID.camera_names):
            write_jpeg(out_dir / info['cams'][name]['data_path'], frame['images'][cam])
        write_labels(out_dir / info['occ_gt_path'], frame['semantics'], frame['mask_lidar'],
                     frame['mask_camera'])
        if with_lidar:
            path = out_dir / info['lidar_path']
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(nuscenes_bin_bytes(frame['points']))
        infos.append(info)
        on_frame()
    _link_scene_neighbours(infos)
    return infos


def _check_arguments(num_logs, frames_per_log, frames_per_scene, image_size, val_logs,
                     workers):
    counts = dict(num_logs=num_logs, frames_per_log=frames_per_log,
                  frames_per_scene=frames_per_scene, workers=workers)
    bad = {k: v for k, v in counts.items() if not isinstance(v, (int, np.integer)) or v < 1}
    if bad:
        raise ValueError(f'{", ".join(bad)} must be integers >= 1, got {bad}')
    if (len(tuple(image_size)) != 2 or
            not all(isinstance(v, (int, np.integer)) and v >= 16 for v in image_size)):
        raise ValueError(f'image_size must be (width, height), integers >= 16 pixels, got '
                         f'{image_size!r}')
    if not isinstance(val_logs, (int, np.integer)) or not 0 <= val_logs < num_logs:
        raise ValueError(f'val_logs must be an integer in 0..num_logs - 1 = {num_logs - 1} '
                         f'(at least one log must stay for training), got {val_logs!r}')


def generate_occ3d_dataset(out_dir, num_logs, frames_per_log, image_size=(320, 180), seed=0,
                           frames_per_scene=40, with_lidar=True, log=print, workers=1,
                           val_logs=None):
    """Generate `num_logs` synthetic logs into `out_dir` in the Occ3D-nuScenes layout.

    Args:
        out_dir: the nuScenes-like root that receives samples/, gts/ and the infos.
        num_logs, frames_per_log: logs and 2 Hz key frames per log.
        image_size: (width, height) of the camera images in pixels.
        seed: same seed -> identical files; another seed -> other scenes.
        frames_per_scene: each log is cut into scenes of this many frames (nuScenes: 40).
        with_lidar: also write each frame's sweep as samples/LIDAR_TOP/<token>.pcd.bin (the
            LiDAR mask is computed either way).
        log: callable for progress lines, or None for silence.
        workers: processes generating logs in parallel (the output does not depend on it).
        val_logs: the last this many logs go to the val infos; None: 1 when num_logs >= 2,
            else 0 (an empty val file).
    Returns:
        dict: logs, scenes, frames, train_frames, val_frames, seconds, paths.
    """
    if val_logs is None:
        val_logs = 1 if isinstance(num_logs, (int, np.integer)) and num_logs >= 2 else 0
    _check_arguments(num_logs, frames_per_log, frames_per_scene, image_size, val_logs, workers)
    out_dir = Path(out_dir)
    progress = Progress(num_logs * frames_per_log, log)
    settings = dict(out_dir=out_dir, seed=seed, num_frames=frames_per_log,
                    image_size=tuple(int(v) for v in image_size),
                    frames_per_scene=frames_per_scene, with_lidar=with_lidar)
    results = generate_logs(_generate_log, num_logs, frames_per_log, progress, workers,
                            **settings)
    num_train = num_logs - val_logs
    paths = {}
    for split, logs in (('train', range(num_train)), ('val', range(num_train, num_logs))):
        paths[f'{split} infos'] = out_dir / INFOS_NAME.format(split=split)
        write_pickle(paths[f'{split} infos'], {
            'infos': [info for i in logs for info in results[i]],
            'metadata': {'version': VERSION}})
    paths.update({'images': out_dir / 'samples', 'labels': out_dir / 'gts'})
    num_scenes = sum(len({info['scene_token'] for info in infos}) for infos in results.values())
    return {'logs': num_logs, 'scenes': num_scenes, 'frames': num_logs * frames_per_log,
            'train_frames': num_train * frames_per_log, 'val_frames': val_logs * frames_per_log,
            'seconds': time.perf_counter() - progress.start,
            'paths': {name: str(path) for name, path in paths.items()}}
