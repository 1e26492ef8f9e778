"""Generates synthetic logs and writes them in the OpenScene release layout (split `mini`):

    openscene-v1.1/meta_datas/mini/<log_name>.pkl                 list of frame dicts
    openscene-v1.1/sensor_blobs/mini/<log_name>/CAM_*/<token>.jpg
    openscene-v1.1/sensor_blobs/mini/<log_name>/MergedPointCloud/<token>.pcd   (with_lidar)
    openscene-v1.0/meta_datas/meta_data_mini.pkl                  {'infos': [...], 'metadata'}
    openscene-v1.0/occupancy/mini/<scene_name>/occ_gt/NNN_{occ_final,flow_final,occ_invalid}.npy
"""
import datetime
import functools
import multiprocessing
import pickle
import time
from pathlib import Path

import cv2
import numpy as np

from occnet.datasets.synthetic.lidar import LidarScanner, pcd_bytes
from occnet.datasets.synthetic.objects import object_states
from occnet.datasets.synthetic.render import RigRenderer
from occnet.datasets.synthetic.rig import LIDAR2EGO_TRANSLATION, make_rig
from occnet.datasets.synthetic.scene import frame_parts
from occnet.datasets.synthetic.voxelize import voxelize_frame
from occnet.datasets.synthetic.world import frame_time, make_world, roadblock_ids, traffic_lights
from occnet.descriptions import OPENSCENE
from occnet.geometry import dense_to_sparse, index1d_to_xyz, pose_matrix

SPLIT = 'mini'
V11_ROOT, V10_ROOT = 'openscene-v1.1', 'openscene-v1.0'
LIDAR_DIR = 'MergedPointCloud'
JPEG_QUALITY = 90
PICKLE_PROTOCOL = 4
FRAME_INTERVAL_US = 500_000
VEHICLE_NAMES = ('veh-12', 'veh-14', 'veh-26', 'veh-35', 'veh-45', 'veh-47')
_IDENTITY_QUATERNION = [1.0, 0.0, 0.0, 0.0]
_PROGRESS_EVERY_S = 2.0


def label_paths(scene_name, frame_idx, digits=3):
    """Occupancy label paths of a frame, relative to openscene-v1.0 (as stored in v1.0 infos)."""
    folder = f'occupancy/{SPLIT}/{scene_name}/occ_gt/{frame_idx:0{digits}d}'
    return {'occ_gt_final_path': f'{folder}_occ_final.npy',
            'flow_gt_final_path': f'{folder}_flow_final.npy',
            'occ_invalid_path': f'{folder}_occ_invalid.npy'}


def write_pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=PICKLE_PROTOCOL)


def write_jpeg(path, image_rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image_rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f'could not write {path} (check the disk and --out-dir permissions)')


def write_pcd(path, points):
    """Binary PCD with the nuPlan MergedPointCloud fields of (N, 6) float32 points."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pcd_bytes(points))


def _token(rng):
    return rng.bytes(8).hex()


def _log_identity(rng, log_idx, num_frames):
    """Log name, token, vehicle and first timestamp (microseconds) in the nuPlan style."""
    start = datetime.datetime(2021, 5, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        days=3 * log_idx + int(rng.integers(3)), seconds=int(rng.integers(8 * 3600, 22 * 3600)))
    vehicle = str(rng.choice(VEHICLE_NAMES))
    first = int(rng.integers(100, 6000))
    last = first + 10 * num_frames + int(rng.integers(10))  # nuPlan lidar sweeps run at 20 Hz
    return {'log_name': f'{start:%Y.%m.%d.%H.%M.%S}_{vehicle}_{first:05d}_{last:05d}',
            'log_token': _token(rng), 'vehicle_name': vehicle,
            'timestamp': int(start.timestamp()) * 1_000_000 + int(rng.integers(1_000_000))}


def _yaw_quaternion(yaw):
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def _frame_boxes(world, frame_idx, ego2global, lidar2global):
    """Objects of one frame: global centres/velocities moved into the lidar and ego frames."""
    centres, velocities = object_states(world.objects, frame_time(frame_idx), world.layout)
    yaw = world.objects.yaw - world.ego.yaw[frame_idx]
    yaw = (yaw + np.pi) % (2 * np.pi) - np.pi
    out = {}
    for frame, pose in (('lidar', lidar2global), ('ego', ego2global)):
        inverse = np.linalg.inv(pose)
        out[frame] = np.concatenate([centres @ inverse[:3, :3].T + inverse[:3, 3],
                                     world.objects.size, yaw[:, None]], axis=1)
        out[f'{frame}_velocity'] = velocities @ inverse[:3, :3].T
    return out


def _annotations(rng, world, boxes):
    """`anns` of a frame: the objects whose centre lies inside the grid's x-y range."""
    lidar = boxes['lidar']
    keep = np.flatnonzero((np.abs(lidar[:, 0]) < OPENSCENE.point_cloud_range[3])
                          & (np.abs(lidar[:, 1]) < OPENSCENE.point_cloud_range[4]))
    return {'gt_boxes': boxes['ego'][keep],
            'gt_names': np.array([world.objects.category[i] for i in keep], dtype='<U14'),
            'gt_velocity_3d': boxes['ego_velocity'][keep],
            'instance_tokens': [_token(rng) for _ in keep],
            'track_tokens': [world.objects.track_token[i] for i in keep]}


def _cams_entry(rng, cams, log_name, token):
    """The frame's `cams` dict, inserted in a random camera order like the release."""
    entry = {}
    for i in rng.permutation(len(OPENSCENE.camera_names)):
        name = OPENSCENE.camera_names[i]
        entry[name] = {'data_path': f'{log_name}/{name}/{token}.jpg',
                       **{key: np.array(value, copy=True) for key, value in cams[name].items()}}
    return entry


def _frame_info(rng, world, cams, identity, scene, frame_idx, token):
    """v1.1 frame dict of key frame `frame_idx` of a log (sample_prev / sample_next are linked
    once the whole log exists)."""
    ego = world.ego
    ego2global = pose_matrix(ego.translation[frame_idx], _yaw_quaternion(ego.yaw[frame_idx]))
    lidar2ego = pose_matrix(LIDAR2EGO_TRANSLATION, _IDENTITY_QUATERNION)
    lidar2global = ego2global @ lidar2ego
    boxes = _frame_boxes(world, frame_idx, ego2global, lidar2global)
    can_bus = np.concatenate([ego.translation[frame_idx], _yaw_quaternion(ego.yaw[frame_idx]),
                              ego.acceleration[frame_idx], ego.velocity[frame_idx],
                              ego.angular_rate[frame_idx], [0.0, 0.0]])
    info = {
        'token': token,
        'frame_idx': frame_idx - scene['first_frame'],
        'timestamp': identity['timestamp'] + frame_idx * FRAME_INTERVAL_US,
        'log_name': identity['log_name'],
        'log_token': identity['log_token'],
        'scene_name': scene['name'],
        'scene_token': scene['token'],
        'map_location': world.map_location,
        'roadblock_ids': scene['roadblock_ids'],
        'vehicle_name': identity['vehicle_name'],
        'can_bus': can_bus,
        'lidar_path': f"{identity['log_name']}/{LIDAR_DIR}/{token}.pcd",
        'lidar2ego_translation': np.array(LIDAR2EGO_TRANSLATION),
        'lidar2ego_rotation': list(_IDENTITY_QUATERNION),
        'ego2global_translation': can_bus[:3].copy(),
        'ego2global_rotation': can_bus[3:7].copy(),
        'ego_dynamic_state': [float(ego.velocity[frame_idx, 0]), float(ego.velocity[frame_idx, 1]),
                              float(ego.acceleration[frame_idx, 0]),
                              float(ego.acceleration[frame_idx, 1])],
        'traffic_lights': traffic_lights(world, frame_time(frame_idx)),
        'driving_command': np.eye(4, dtype=np.int64)[ego.driving_command[frame_idx]],
        'cams': _cams_entry(rng, cams, identity['log_name'], token),
        'sample_prev': None,
        'sample_next': None,
        'ego2global': ego2global,
        'lidar2ego': lidar2ego,
        'lidar2global': lidar2global,
        'anns': _annotations(rng, world, boxes),
    }
    return info


def _scenes(rng, world, log_idx, num_frames, frames_per_scene):
    """Scene of every frame: name, token, first frame and the road blocks it drives through."""
    per_frame = []
    for scene_idx, first in enumerate(range(0, num_frames, frames_per_scene)):
        frames = range(first, min(first + frames_per_scene, num_frames))
        scene = {'name': f'log-{log_idx:04d}-scene-{scene_idx:04d}', 'index': scene_idx,
                 'token': _token(rng),
                 'first_frame': first, 'roadblock_ids': roadblock_ids(world, frames)}
        per_frame += [scene] * len(frames)
    return per_frame


def _link_scene_neighbours(infos):
    for prev, cur in zip(infos[:-1], infos[1:]):
        if prev['scene_token'] == cur['scene_token']:
            prev['sample_next'], cur['sample_prev'] = cur['token'], prev['token']


class Progress:
    """Prints `frames done/total, elapsed, eta` at most every _PROGRESS_EVERY_S seconds."""

    def __init__(self, total, log):
        self.total, self.log, self.done = total, log, 0
        self.start = self.last = time.perf_counter()

    def step(self, frames=1):
        self.done += frames
        now = time.perf_counter()
        if self.log is None or (now - self.last < _PROGRESS_EVERY_S and self.done < self.total):
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done)
        self.log(f'[synthetic] frames {self.done}/{self.total} | elapsed {elapsed:.1f} s | '
                 f'eta {eta:.1f} s')


def _write_labels(v10_root, paths, labels, flow, visible):
    """The three v1.0 label files of a frame; returns the sparse occupancy rows (N, 2)."""
    occ = dense_to_sparse(labels, free_index=OPENSCENE.free_index)
    xyz = index1d_to_xyz(occ[:, 0], OPENSCENE.grid_shape)
    (v10_root / paths['occ_gt_final_path']).parent.mkdir(parents=True, exist_ok=True)
    np.save(v10_root / paths['occ_gt_final_path'], occ)
    np.save(v10_root / paths['flow_gt_final_path'], flow[xyz[:, 0], xyz[:, 1], xyz[:, 2]])
    np.save(v10_root / paths['occ_invalid_path'], np.flatnonzero(~visible))
    return occ


def _log_seeds(seed, log_idx):
    """Independent seed sequences of a log's world, rig and metadata."""
    return np.random.SeedSequence([seed, log_idx]).spawn(3)


def log_world(seed, log_idx, num_frames):
    """The World of log `log_idx` (0-based, as in its scene names) of a dataset generated with
    `seed` and `num_frames` frames per log: its objects, their parts and colours."""
    return make_world(np.random.default_rng(_log_seeds(seed, log_idx)[0]), num_frames)


def _generate_log(out_dir, log_idx, seed, num_frames, image_size, frames_per_scene, label_digits,
                  with_lidar, on_frame):
    """Generate and write one log; returns its v1.0 infos (v1.1 infos plus label paths) and
    its number of scenes."""
    world_seq, rig_seq, meta_seq = _log_seeds(seed, log_idx)
    world = make_world(np.random.default_rng(world_seq), num_frames)
    cams = make_rig(np.random.default_rng(rig_seq), image_size)
    meta_rng = np.random.default_rng(meta_seq)
    identity = _log_identity(meta_rng, log_idx, num_frames)
    scenes = _scenes(meta_rng, world, log_idx, num_frames, frames_per_scene)
    tokens = [_token(meta_rng) for _ in range(num_frames)]
    renderer = RigRenderer(cams, image_size)
    scanner = LidarScanner() if with_lidar else None
    sensor_root = out_dir / V11_ROOT / 'sensor_blobs' / SPLIT
    infos, all_paths = [], []
    for k in range(num_frames):
        info = _frame_info(meta_rng, world, cams, identity, scenes[k], k, tokens[k])
        lidar2global = info['lidar2global']
        parts = frame_parts(world, frame_time(k), lidar2global)
        labels, flow, _, _ = voxelize_frame(parts, world.layout, lidar2global)
        rendered = renderer.render(parts, world.layout, lidar2global, world.sun_direction)
        for cam, name in enumerate(OPENSCENE.camera_names):
            write_jpeg(sensor_root / info['cams'][name]['data_path'], rendered.images[cam])
        paths = label_paths(scenes[k]['name'], info['frame_idx'], label_digits)
        _write_labels(out_dir / V10_ROOT, paths, labels, flow, rendered.visible)
        if scanner is not None:
            write_pcd(sensor_root / info['lidar_path'],
                      scanner.scan(parts, world.layout, lidar2global))
        infos.append(info)
        all_paths.append(paths)
        on_frame()
    _link_scene_neighbours(infos)
    write_pickle(out_dir / V11_ROOT / 'meta_datas' / SPLIT / f"{identity['log_name']}.pkl", infos)
    return [{**info, **paths} for info, paths in zip(infos, all_paths)], scenes[-1]['index'] + 1


def _generate_quietly(generate_log, log_idx, **kwargs):
    """`generate_log` in a worker process (progress is counted per finished log)."""
    return log_idx, generate_log(log_idx=log_idx, on_frame=lambda: None, **kwargs)


def generate_logs(generate_log, num_logs, frames_per_log, progress, workers, **settings):
    """{log_idx: generate_log(log_idx=i, on_frame=..., **settings)} for every log, in `workers`
    forked processes or in this one. Results take the same pickle round trip either way, so
    nothing written from them depends on `workers`."""
    results = {}
    if workers > 1 and num_logs > 1:
        job = functools.partial(_generate_quietly, generate_log, **settings)
        with multiprocessing.get_context('fork').Pool(min(workers, num_logs)) as pool:
            for log_idx, result in pool.imap_unordered(job, range(num_logs)):
                results[log_idx] = result
                progress.step(frames_per_log)
    else:
        for log_idx in range(num_logs):
            result = generate_log(log_idx=log_idx, on_frame=progress.step, **settings)
            results[log_idx] = pickle.loads(pickle.dumps(result, protocol=4))
    return results


def generate_dataset(out_dir, num_logs=4, frames_per_log=40, image_size=(320, 180), seed=0,
                     frames_per_scene=20, label_digits=3, with_lidar=False, log=print,
                     workers=1):
    """Generate `num_logs` synthetic logs into `out_dir` in the OpenScene layout.

    Args:
        out_dir: folder that receives openscene-v1.1/ and openscene-v1.0/.
        num_logs, frames_per_log: logs and 2 Hz key frames per log.
        image_size: (width, height) of the camera images in pixels.
        seed: same seed -> identical pickles and label files; another seed -> other scenes.
        frames_per_scene: each log is cut into scenes of this many frames (the last may be shorter).
        label_digits: zero-padding of the frame index in label file names (3 or 4).
        with_lidar: also write each frame's lidar sweep (lidar.py) as a binary PCD.
        log: callable for progress lines, or None for silence.
        workers: processes generating logs in parallel (the output does not depend on it).
    Returns:
        dict: logs, scenes, frames, seconds, paths (the output folders and files).
    """
    if min(num_logs, frames_per_log, frames_per_scene) < 1:
        raise ValueError('num_logs, frames_per_log and frames_per_scene must be >= 1, got '
                         f'{num_logs}, {frames_per_log}, {frames_per_scene}')
    out_dir = Path(out_dir)
    progress = Progress(num_logs * frames_per_log, log)
    settings = dict(out_dir=out_dir, seed=seed, num_frames=frames_per_log, image_size=image_size,
                    frames_per_scene=frames_per_scene, label_digits=label_digits,
                    with_lidar=with_lidar)
    results = generate_logs(_generate_log, num_logs, frames_per_log, progress, workers,
                            **settings)
    all_infos = [info for log_idx in range(num_logs) for info in results[log_idx][0]]
    num_scenes = sum(result[1] for result in results.values())
    v10_meta = out_dir / V10_ROOT / 'meta_datas' / f'meta_data_{SPLIT}.pkl'
    write_pickle(v10_meta, {'infos': all_infos, 'metadata': {'version': f'v1.0-{SPLIT}'}})
    return {'logs': num_logs, 'scenes': num_scenes, 'frames': len(all_infos),
            'seconds': time.perf_counter() - progress.start,
            'paths': {'v1.1 metadata': str(out_dir / V11_ROOT / 'meta_datas' / SPLIT),
                      'v1.1 sensor blobs': str(out_dir / V11_ROOT / 'sensor_blobs' / SPLIT),
                      'v1.0 metadata': str(v10_meta),
                      'v1.0 occupancy': str(out_dir / V10_ROOT / 'occupancy' / SPLIT)}}
