"""Building training infos from an OpenScene download (the logic of tools/collect_data.py).

Reads v1.1 per-log metadata (or, for the v1.0-only layout, the v1.0 split pickle), joins the
v1.0 occupancy labels by frame token, rewrites paths relative to the data root, and splits
logs into train / val deterministically.
"""
import glob
import os

import numpy as np

from occnet.constants import CAMERA_NAMES
from occnet.datasets.frame_checks import CAM_KEYS, frame_problems
from occnet.datasets.infos import VERIFY_HINT, DataError, load_pickle
from occnet.geometry import pose_matrix

V11, V10 = 'openscene-v1.1', 'openscene-v1.0'
LABEL_KEYS = ('occ_gt_final_path', 'flow_gt_final_path', 'occ_invalid_path')
SLIM_KEYS = ('token', 'frame_idx', 'timestamp', 'log_name', 'scene_token', 'scene_name',
             'map_location', 'can_bus', 'sample_prev', 'sample_next') + LABEL_KEYS
SLIM_CAM_KEYS = CAM_KEYS
MAX_REPORTED = 20


def v11_log_files(data_root, split):
    """{log_name: path} of openscene-v1.1/meta_datas/<split>/*.pkl, sorted by name."""
    meta_dir = os.path.join(data_root, V11, 'meta_datas', split)
    files = sorted(glob.glob(os.path.join(meta_dir, '*.pkl')))
    return {os.path.splitext(os.path.basename(path))[0]: path for path in files}


def v10_meta_file(data_root, split):
    return os.path.join(data_root, V10, 'meta_datas', f'meta_data_{split}.pkl')


def read_v11_log(path):
    """Frame dicts of one v1.1 log pickle (a plain list)."""
    frames = load_pickle(path)
    if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
        raise DataError(f'{path} holds a {type(frames).__name__}; a v1.1 metadata pickle is a '
                        f'list of frame dicts ({VERIFY_HINT})')
    return frames


def read_v10_infos(data_root, split):
    """Frame dicts of openscene-v1.0/meta_datas/meta_data_<split>.pkl, or [] if absent."""
    path = v10_meta_file(data_root, split)
    if not os.path.isfile(path):
        return []
    content = load_pickle(path)
    if not isinstance(content, dict) or not isinstance(content.get('infos'), list):
        raise DataError(f'{path} is not a v1.0 metadata pickle (expected a dict with an '
                        f'"infos" list, got {type(content).__name__}; {VERIFY_HINT})')
    return content['infos']


def label_path_from_root(data_root, path):
    """A v1.0 label path made relative to the data root (absolute paths stay absolute).

    Stored forms seen: relative to openscene-v1.0 (`occupancy/mini/...`), with a './' or a
    download-folder prefix (`./dataset/openscene-v1.0/occupancy/mini/...`)."""
    if path is None or os.path.isabs(path):
        return path
    path = path[2:] if path.startswith('./') else path
    if 'occupancy/' in path:
        return os.path.join(V10, path[path.index('occupancy/'):])
    return os.path.join(V10, path)


def camera_path_from_root(path, layout, split):
    """A camera `data_path` made relative to the data root.

    v1.1 paths are relative to sensor_blobs/<split>/, v1.0 paths to sensor_blobs/ (no split
    level); a path that already names a sensor_blobs folder is cut after it."""
    if os.path.isabs(path):
        return path
    if 'sensor_blobs/' in path:
        path = path[path.index('sensor_blobs/') + len('sensor_blobs/'):]
        if layout == V11 and not path.startswith(f'{split}/'):
            return os.path.join(V11, 'sensor_blobs', split, path)
        return os.path.join(layout, 'sensor_blobs', path)
    if layout == V11:
        return os.path.join(V11, 'sensor_blobs', split, path)
    return os.path.join(V10, 'sensor_blobs', path)


def label_index(v10_infos, data_root):
    """{token: {label key: data-root relative path or None}} from v1.0 frame dicts."""
    return {f['token']: {key: label_path_from_root(data_root, f.get(key)) for key in LABEL_KEYS}
            for f in v10_infos if 'token' in f}


def pose_matrices(frame):
    """(lidar2ego, ego2global, lidar2global) float64 (4, 4) of a frame, from the 4x4 keys when
    present, else from the translation / quaternion keys."""
    if frame.get('lidar2global') is not None and frame.get('lidar2ego') is not None:
        lidar2ego = np.asarray(frame['lidar2ego'], dtype=np.float64)
        lidar2global = np.asarray(frame['lidar2global'], dtype=np.float64)
        ego2global = (np.asarray(frame['ego2global'], dtype=np.float64)
                      if frame.get('ego2global') is not None
                      else lidar2global @ np.linalg.inv(lidar2ego))
        return lidar2ego, ego2global, lidar2global
    lidar2ego = pose_matrix(frame['lidar2ego_translation'], frame['lidar2ego_rotation'])
    ego2global = pose_matrix(frame['ego2global_translation'], frame['ego2global_rotation'])
    return lidar2ego, ego2global, ego2global @ lidar2ego


def join_frame(frame, labels, layout, split, data_root):
    """A copy of a frame with data-root relative camera paths and its v1.0 label paths
    (None when the frame has no label)."""
    frame = dict(frame)
    frame['cams'] = {cam: dict(info, data_path=camera_path_from_root(info['data_path'], layout,
                                                                     split))
                     for cam, info in frame['cams'].items()}
    label = labels.get(frame['token'])
    for key in LABEL_KEYS:
        frame[key] = label[key] if label else label_path_from_root(data_root, frame.get(key))
    return frame


def slim_frame(frame):
    """Only what training needs: SLIM_KEYS, the three pose matrices and the 8 cameras'
    calibration and image path (drops anns, lidar, traffic lights, distortion...)."""
    slim = {key: frame.get(key) for key in SLIM_KEYS}
    slim['can_bus'] = np.asarray(frame['can_bus'], dtype=np.float64)
    slim['lidar2ego'], slim['ego2global'], slim['lidar2global'] = pose_matrices(frame)
    slim['cams'] = {cam: {key: frame['cams'][cam][key] for key in SLIM_CAM_KEYS}
                    for cam in CAMERA_NAMES}
    return slim


def iter_logs(data_root, split, logs=None):
    """Yield (log_name, source pickle, frame dicts sorted by timestamp, joined to labels).

    Reads openscene-v1.1 when it has metadata for `split`, else the v1.0-only layout.
    Args:
        logs: optional set of log names to read (others are not opened).
    """
    files = v11_log_files(data_root, split)
    v10_path = v10_meta_file(data_root, split)
    if not files and not os.path.isfile(v10_path):
        raise DataError(
            f'no metadata under {os.path.join(data_root, V11, "meta_datas", split)} nor '
            f'{v10_path}; point --data-root at the folder holding openscene-v1.1/ and '
            f'openscene-v1.0/')
    v10 = read_v10_infos(data_root, split)
    labels = label_index(v10, data_root)
    if files:
        layout = V11
        del v10
        sources = [(name, path, None) for name, path in files.items()
                   if logs is None or name in logs]
    else:
        layout = V10
        by_log = {}
        for frame in v10:
            by_log.setdefault(frame.get('log_name'), []).append(frame)
        sources = [(name, v10_path, by_log[name]) for name in sorted(by_log, key=str)
                   if logs is None or name in logs]
    for name, path, frames in sources:
        frames = read_v11_log(path) if frames is None else frames
        bad_order = [f for f in frames if 'timestamp' not in f or 'token' not in f]
        if bad_order:
            raise DataError(f'{path}: a frame lacks token/timestamp ({VERIFY_HINT})')
        joined = [join_frame(f, labels, layout, split, data_root) if 'cams' in f and
                  isinstance(f['cams'], dict) else f
                  for f in sorted(frames, key=lambda f: f['timestamp'])]
        yield name, path, joined


def count_stats(frames_by_log):
    """logs, scenes, frames, labelled and unlabelled frames of {log: [frames]}."""
    frames = [f for log in frames_by_log.values() for f in log]
    labelled = sum(f.get('occ_gt_final_path') is not None for f in frames)
    return dict(logs=len(frames_by_log), scenes=len({f['scene_token'] for f in frames}),
                frames=len(frames), labelled=labelled, unlabelled=len(frames) - labelled)


def split_logs(log_names, val_ratio, seed):
    """Deterministic (train, val) split of sorted log names; no log in both."""
    names = sorted(log_names)
    if len(names) < 2 or val_ratio <= 0:
        return names, []
    order = np.random.default_rng(seed).permutation(len(names))
    num_val = min(max(1, int(round(val_ratio * len(names)))), len(names) - 1)
    val = set(names[i] for i in order[:num_val])
    return [n for n in names if n not in val], sorted(val)


def collect(data_root, split, val_ratio=0.2, seed=0, logs=None, map_locations=None, slim=True,
            keep_unlabelled=False, skip_bad=False, progress=None):
    """Build (train_frames, val_frames, stats) for one split of a data root.

    Args:
        logs: keep only these log names (None = all).
        map_locations: keep only logs driven in these map locations (None = all).
        slim: keep only what training needs (slim_frame); False keeps every key.
        keep_unlabelled: keep frames without a v1.0 label (label paths None), e.g. to run
            inference on them; by default they are left out and counted.
        skip_bad: drop frames with bad metadata (frame_checks) and count them, instead of
            raising DataError.
        progress: callable(done, total) called after each log.
    Returns:
        train, val: lists of frame dicts (logs in name order, frames in time order).
        stats: {'all'|'train'|'val': count_stats of the frames found} plus 'bad' (count) and
            'bad_examples' (first 'file: token: problem' lines).
    """
    logs = None if logs is None else set(logs)
    total = len(v11_log_files(data_root, split)) if logs is None else len(logs)
    found, kept, bad = {}, {}, []
    for done, (name, path, frames) in enumerate(iter_logs(data_root, split, logs), start=1):
        if map_locations is not None and not any(f.get('map_location') in map_locations
                                                 for f in frames):
            continue
        good = []
        for frame in frames:
            problems = frame_problems(frame)
            if problems:
                message = f'{path}: frame {frame.get("token")}: {"; ".join(problems)}'
                if not skip_bad:
                    raise DataError(f'{message} ({VERIFY_HINT}, or pass --skip-bad to leave '
                                    f'such frames out)')
                bad.append(message)
                continue
            good.append(slim_frame(frame) if slim else frame)
        found[name] = good
        kept[name] = [f for f in good
                      if keep_unlabelled or f.get('occ_gt_final_path') is not None]
        if progress is not None:
            progress(done, max(total, done))
    if logs is not None and logs - set(found) and map_locations is None:
        missing = sorted(logs - set(found))
        raise DataError(f'{len(missing)} requested logs have no metadata in {data_root} '
                        f'split {split}, e.g. {missing[:3]}')
    train_logs, val_logs = split_logs(kept, val_ratio, seed)
    stats = {'all': count_stats(found),
             'train': count_stats({n: kept[n] for n in train_logs}),
             'val': count_stats({n: kept[n] for n in val_logs}),
             'bad': len(bad), 'bad_examples': bad[:MAX_REPORTED]}
    train = [f for name in train_logs for f in kept[name]]
    val = [f for name in val_logs for f in kept[name]]
    return train, val, stats
