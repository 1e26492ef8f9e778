"""Building training infos from an OpenScene download (the logic of tools/collect_data.py).

Reads v1.1 per-log metadata, joins the v1.0 occupancy labels by frame token, rewrites paths
relative to the data root, and splits logs into train / val deterministically.
"""
import glob
import os

import numpy as np

from occnet.datasets.infos import DataError, load_pickle

V11, V10 = 'openscene-v1.1', 'openscene-v1.0'
LABEL_KEYS = ('occ_gt_final_path', 'flow_gt_final_path', 'occ_invalid_path')


def read_v11_logs(data_root, split):
    """{log_name: [frame dicts]} from openscene-v1.1/meta_datas/<split>/*.pkl."""
    meta_dir = os.path.join(data_root, V11, 'meta_datas', split)
    files = sorted(glob.glob(os.path.join(meta_dir, '*.pkl')))
    logs = {}
    for path in files:
        frames = load_pickle(path)
        if not isinstance(frames, list):
            raise DataError(f'{path} holds a {type(frames).__name__}; a v1.1 metadata pickle '
                            f'is a list of frame dicts')
        logs[os.path.splitext(os.path.basename(path))[0]] = frames
    return logs


def read_v10_infos(data_root, split):
    """Frame dicts of openscene-v1.0/meta_datas/meta_data_<split>.pkl, or [] if absent."""
    path = os.path.join(data_root, V10, 'meta_datas', f'meta_data_{split}.pkl')
    if not os.path.isfile(path):
        return []
    content = load_pickle(path)
    if not isinstance(content, dict) or 'infos' not in content:
        raise DataError(f'{path} is not a v1.0 metadata pickle (expected a dict with "infos")')
    return content['infos']


def label_path_from_root(data_root, path):
    """A v1.0 label path made relative to the data root (absolute paths stay absolute)."""
    if path is None or os.path.isabs(path):
        return path
    path = path[2:] if path.startswith('./') else path
    if os.path.exists(os.path.join(data_root, V10, path)):
        return os.path.join(V10, path)
    if 'occupancy/' in path:  # e.g. 'dataset/openscene-v1.0/occupancy/mini/...'
        return os.path.join(V10, path[path.index('occupancy/'):])
    return path


def camera_paths_from_root(frame, split):
    """Rewrite cams[*]['data_path'] (relative to sensor_blobs/<split>) to data-root relative."""
    cams = {}
    for cam, info in frame['cams'].items():
        info = dict(info)
        if not os.path.isabs(info['data_path']):
            info['data_path'] = os.path.join(V11, 'sensor_blobs', split, info['data_path'])
        cams[cam] = info
    frame['cams'] = cams
    return frame


def split_logs(log_names, val_ratio, seed):
    """Deterministic (train, val) split of sorted log names; no log in both."""
    names = sorted(log_names)
    if len(names) < 2 or val_ratio <= 0:
        return names, []
    order = np.random.default_rng(seed).permutation(len(names))
    num_val = min(max(1, int(round(val_ratio * len(names)))), len(names) - 1)
    val = sorted(names[i] for i in order[:num_val])
    return [n for n in names if n not in set(val)], val


def collect(data_root, split, val_ratio=0.2, seed=0, progress=None):
    """Build (train_frames, val_frames, stats) for one split of a data root."""
    logs = read_v11_logs(data_root, split)
    v10 = read_v10_infos(data_root, split)
    if not logs:
        if not v10:
            raise DataError(
                f'no metadata under {os.path.join(data_root, V11, "meta_datas", split)} nor '
                f'{os.path.join(data_root, V10, "meta_datas", f"meta_data_{split}.pkl")}; '
                f'point --data-root at the folder holding openscene-v1.1/ and openscene-v1.0/')
        logs = {}
        for frame in v10:
            logs.setdefault(frame['log_name'], []).append(frame)
    labels = {f['token']: {k: f.get(k) for k in LABEL_KEYS} for f in v10}
    stats = dict(logs=len(logs), frames=0, labelled=0, unlabelled=0, scenes=0)
    per_log = {}
    for i, (log_name, frames) in enumerate(sorted(logs.items())):
        kept = []
        for frame in sorted(frames, key=lambda f: f['timestamp']):
            frame = camera_paths_from_root(dict(frame), split)
            label = labels.get(frame['token'], {})
            for key in LABEL_KEYS:
                frame[key] = label_path_from_root(data_root, label.get(key, frame.get(key)))
            stats['frames'] += 1
            if frame['occ_gt_final_path'] is None:
                stats['unlabelled'] += 1
                continue
            stats['labelled'] += 1
            kept.append(frame)
        stats['scenes'] += len({f['scene_token'] for f in frames})
        per_log[log_name] = kept
        if progress is not None:
            progress(i + 1, len(logs))
    train_logs, val_logs = split_logs(per_log, val_ratio, seed)
    train = [f for name in train_logs for f in per_log[name]]
    val = [f for name in val_logs for f in per_log[name]]
    stats.update(train_logs=len(train_logs), val_logs=len(val_logs), train_frames=len(train),
                 val_frames=len(val))
    return train, val, stats
