"""Building training infos from an OpenScene download (the logic of tools/collect_data.py).

Reads v1.1 per-log metadata (or, for the v1.0-only layout, the v1.0 split pickle), joins the
v1.0 occupancy labels by frame token, rewrites paths relative to the data root, and splits
logs into train / val deterministically.
"""
import glob
import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from occnet.datasets.frame_checks import CAM_KEYS, frame_problems, has_file_paths
from occnet.datasets.infos import VERIFY_HINT, DataError, load_pickle, restricted_loads
from occnet.descriptions import OPENSCENE
from occnet.geometry import pose_matrix

V11, V10 = 'openscene-v1.1', 'openscene-v1.0'
LABEL_KEYS = ('occ_gt_final_path', 'flow_gt_final_path', 'occ_invalid_path')
SLIM_KEYS = ('token', 'frame_idx', 'timestamp', 'log_name', 'scene_token', 'scene_name',
             'map_location', 'can_bus', 'sample_prev', 'sample_next', 'lidar_path') + LABEL_KEYS
MAX_REPORTED = 20


def read_log_list(path):
    """Log names from a text file, one per line (a folder prefix and a `.pkl` suffix are
    dropped: nuPlan log names contain dots; blank lines and '#' lines are ignored)."""
    if not os.path.isfile(path):
        raise DataError(f'log list {path} not found (one log name per line)')
    with open(path) as f:
        names = [os.path.basename(line.strip().rstrip('/')) for line in f
                 if line.strip() and not line.startswith('#')]
    return {name[:-len('.pkl')] if name.endswith('.pkl') else name for name in names}


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
    """A camera `data_path` (or a frame's `lidar_path`) made relative to the data root.

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
            for f in v10_infos if isinstance(f, dict) and 'token' in f}


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
    """A copy of a frame with data-root relative camera and lidar paths (`lidar_path` None
    when the frame names no point cloud) and its v1.0 label paths (None when the frame has no
    label)."""
    frame = dict(frame)
    frame['cams'] = {cam: dict(info, data_path=camera_path_from_root(info['data_path'], layout,
                                                                     split))
                     if isinstance(info, dict) and isinstance(info.get('data_path'), str)
                     else info for cam, info in frame['cams'].items()}
    lidar_path = frame.get('lidar_path')
    frame['lidar_path'] = (camera_path_from_root(lidar_path, layout, split)
                           if isinstance(lidar_path, str) and lidar_path else None)
    label = labels.get(frame['token'])
    for key in LABEL_KEYS:
        frame[key] = label[key] if label else label_path_from_root(data_root, frame.get(key))
    return frame


def slim_frame(frame):
    """Only what training needs: SLIM_KEYS (with the lidar_path), the three pose matrices and
    the 8 cameras' calibration and image path (drops anns, traffic lights, distortion...)."""
    slim = {key: frame.get(key) for key in SLIM_KEYS}
    slim['can_bus'] = np.asarray(frame['can_bus'], dtype=np.float64)
    slim['lidar2ego'], slim['ego2global'], slim['lidar2global'] = pose_matrices(frame)
    slim['cams'] = {cam: {key: frame['cams'][cam][key] for key in CAM_KEYS}
                    for cam in OPENSCENE.camera_names}
    return slim


def metadata_files(data_root, split):
    """({log_name: v1.1 pickle}, v1.0 split pickle path) of a split; DataError naming both
    places when the split has neither."""
    files = v11_log_files(data_root, split)
    v10_path = v10_meta_file(data_root, split)
    if not files and not os.path.isfile(v10_path):
        raise DataError(
            f'no metadata under {os.path.join(data_root, V11, "meta_datas", split)} nor '
            f'{v10_path}; point --data-root at the folder holding openscene-v1.1/ and '
            f'openscene-v1.0/ and check --split')
    return files, v10_path


def log_sources(data_root, split, logs=None):
    """(layout, label index, [(log_name, source pickle, frames or None)]) of a split.

    Reads openscene-v1.1 when it has metadata for `split` (frames None: read them from the
    source pickle), else the v1.0-only layout (frames taken from the v1.0 pickle).
    Args:
        logs: optional set of log names to keep (others are not opened).
    """
    files, v10_path = metadata_files(data_root, split)
    v10 = read_v10_infos(data_root, split)
    labels = label_index(v10, data_root)
    if files:
        return V11, labels, [(name, path, None) for name, path in files.items()
                             if logs is None or name in logs]
    by_log = {}
    for frame in v10:
        if isinstance(frame, dict):
            by_log.setdefault(frame.get('log_name'), []).append(frame)
    return V10, labels, [(name, v10_path, by_log[name]) for name in sorted(by_log, key=str)
                         if logs is None or name in logs]


def joined_log(path, frames, labels, layout, split, data_root):
    """Frames of one log sorted by time and joined to their labels (frames None: read the
    v1.1 pickle at `path`). Frames that do not name their files, or lack an integer
    timestamp, are passed on unjoined (first) for frame_problems to report."""
    frames = read_v11_log(path) if frames is None else frames

    def timed(frame):
        return isinstance(frame, dict) and isinstance(frame.get('timestamp'), (int, np.integer))
    broken = [f for f in frames if not timed(f) or not has_file_paths(f)]
    good = sorted((f for f in frames if timed(f) and has_file_paths(f)),
                  key=lambda f: f['timestamp'])
    return broken + [join_frame(f, labels, layout, split, data_root) for f in good]


def iter_logs(data_root, split, logs=None):
    """Yield (log_name, source pickle, frames sorted by time, joined to labels)."""
    layout, labels, sources = log_sources(data_root, split, logs)
    for name, path, frames in sources:
        yield name, path, joined_log(path, frames, labels, layout, split, data_root)


def summarize(frames):
    """Scene tokens, frame and labelled-frame counts of a list of frames."""
    return dict(scenes={f['scene_token'] for f in frames}, frames=len(frames),
                labelled=sum(f.get('occ_gt_final_path') is not None for f in frames))


def count_stats(summaries):
    """logs, scenes, frames, labelled and unlabelled frames of a list of summaries."""
    frames = sum(s['frames'] for s in summaries)
    labelled = sum(s['labelled'] for s in summaries)
    return dict(logs=len(summaries), scenes=len(set().union(*[s['scenes'] for s in summaries])),
                frames=frames, labelled=labelled, unlabelled=frames - labelled)


def pickle_chunk(frames):
    """The body of a protocol-3 pickle of a list: the opcodes that append `frames` to the
    list on top of the unpickler's stack. Chunks of separate logs concatenate into one
    list pickle (join_chunks): protocol 3 memoizes with explicit indices, which each chunk
    only reads after writing them, so chunks cannot see each other's entries."""
    data = pickle.dumps(frames, protocol=3)
    header = b'\x80\x03]q\x00'  # PROTO 3, EMPTY_LIST, BINPUT 0
    assert data.startswith(header) and data.endswith(b'.')
    return data[len(header):-1]


def write_chunks(path, chunks):
    """Write one list pickle made of pickle_chunk bodies, atomically (tmp + rename)."""
    tmp = f'{path}.tmp'
    with open(tmp, 'wb') as f:
        f.write(b'\x80\x03]')
        for chunk in chunks:
            f.write(chunk)
        f.write(b'.')
    os.replace(tmp, path)


def process_log(name, path, frames, context):
    """Join, check, slim and filter one log (in a worker process when there are several).

    Returns a dict: name, source, map_locations, found / kept (summarize), bad (messages),
    chunk (pickle_chunk of the kept frames)."""
    frames = joined_log(path, frames, context['labels'], context['layout'], context['split'],
                        context['data_root'])
    good, bad = [], []
    for frame in frames:
        problems = frame_problems(frame)
        if problems:
            token = frame.get('token') if isinstance(frame, dict) else None
            message = f'{path}: frame {token}: {"; ".join(problems)}'
            if not context['skip_bad']:
                raise DataError(f'{message} ({VERIFY_HINT}, or pass --skip-bad to leave such '
                                f'frames out)')
            bad.append(message)
            continue
        good.append(slim_frame(frame) if context['slim'] else frame)
    kept = [f for f in good if context['keep_unlabelled'] or
            f.get('occ_gt_final_path') is not None]
    return dict(name=name, source=path, map_locations={f.get('map_location') for f in good},
                found=summarize(good), kept=summarize(kept), bad=bad, chunk=pickle_chunk(kept))


_CONTEXT = {}  # set before forking workers, read by _process_source


def _process_source(source):
    return process_log(*source, _CONTEXT)


def collect_logs(data_root, split, logs=None, map_locations=None, slim=True,
                 keep_unlabelled=False, skip_bad=False, workers=1, progress=None):
    """process_log over the logs of a split, in `workers` processes; {name: result} in name
    order, the logs filtered by `logs` names and `map_locations`."""
    logs = None if logs is None else set(logs)
    layout, labels, sources = log_sources(data_root, split, logs)
    if logs is not None and map_locations is None and logs - {s[0] for s in sources}:
        missing = sorted(logs - {s[0] for s in sources})
        raise DataError(f'{len(missing)} requested logs have no metadata in {data_root} '
                        f'split {split}, e.g. {missing[:3]}')
    _CONTEXT.update(labels=labels, layout=layout, split=split, data_root=data_root, slim=slim,
                    keep_unlabelled=keep_unlabelled, skip_bad=skip_bad)
    results = {}
    try:
        if workers > 1 and len(sources) > 1:
            # a pool that raises BrokenProcessPool when a worker dies (OOM killer), not a hang
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('fork')) \
                    as pool:
                for done, result in enumerate(pool.map(_process_source, sources), start=1):
                    results[result['name']] = result
                    if progress is not None:
                        progress(done, len(sources))
        else:
            for done, source in enumerate(sources, start=1):
                result = _process_source(source)
                results[result['name']] = result
                if progress is not None:
                    progress(done, len(sources))
    except BrokenProcessPool as err:
        raise DataError(f'a collect worker process died ({err}); out of memory? retry with '
                        f'fewer --workers') from err
    finally:
        _CONTEXT.clear()
    if map_locations is not None:
        results = {name: r for name, r in results.items() if r['map_locations'] & map_locations}
    return results


def split_logs(log_names, val_ratio, seed):
    """Deterministic (train, val) split of sorted log names; no log in both."""
    names = sorted(log_names)
    if len(names) < 2 or val_ratio <= 0:
        return names, []
    order = np.random.default_rng(seed).permutation(len(names))
    num_val = min(max(1, int(round(val_ratio * len(names)))), len(names) - 1)
    val = set(names[i] for i in order[:num_val])
    return [n for n in names if n not in val], sorted(val)


def split_stats(results, train_logs, val_logs):
    """{'all'|'train'|'val': count_stats} plus 'bad' and 'bad_examples' (first messages)."""
    bad = [message for r in results.values() for message in r['bad']]
    return {'all': count_stats([r['found'] for r in results.values()]),
            'train': count_stats([results[n]['kept'] for n in train_logs]),
            'val': count_stats([results[n]['kept'] for n in val_logs]),
            'bad': len(bad), 'bad_examples': bad[:MAX_REPORTED]}


def collect(data_root, split, val_ratio=0.2, seed=0, logs=None, map_locations=None, slim=True,
            keep_unlabelled=False, skip_bad=False, workers=1, progress=None):
    """Build (train_frames, val_frames, stats) for one split of a data root, in memory.

    Args:
        logs: keep only these log names (None = all).
        map_locations: keep only logs driven in these map locations (None = all).
        slim: keep only what training needs (slim_frame); False keeps every key.
        keep_unlabelled: keep frames without a v1.0 label (label paths None), e.g. to run
            inference on them; by default they are left out and counted.
        skip_bad: drop frames with bad metadata (frame_checks) and count them, instead of
            raising DataError.
        workers: processes reading logs in parallel (the result does not depend on it).
        progress: callable(done, total) called after each log.
    Returns:
        train, val: lists of frame dicts (logs in name order, frames in time order).
        stats: split_stats of the frames found and kept.
    """
    results = collect_logs(data_root, split, logs, map_locations, slim, keep_unlabelled,
                           skip_bad, workers, progress)
    train_logs, val_logs = split_logs(results, val_ratio, seed)
    frames = {name: restricted_loads(b'\x80\x03]' + r['chunk'] + b'.')
              for name, r in results.items()}
    return ([f for name in train_logs for f in frames[name]],
            [f for name in val_logs for f in frames[name]],
            split_stats(results, train_logs, val_logs))
