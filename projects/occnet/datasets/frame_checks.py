"""Validation of one OpenScene frame dict (metadata only, no file access).

Used by collect_data (at collection), the dataset (at load) and verify_dataset, so a bad
frame is described the same way everywhere.
"""
import numpy as np

from occnet.descriptions import get_description

REQUIRED_KEYS = ('token', 'scene_token', 'timestamp', 'cams', 'can_bus')
CALIB_KEYS = ('sensor2lidar_rotation', 'sensor2lidar_translation', 'cam_intrinsic')
CAM_KEYS = ('data_path',) + CALIB_KEYS
POSE_KEYS = ('lidar2global', 'ego2global', 'lidar2ego', 'ego2global_translation',
             'ego2global_rotation', 'lidar2ego_translation', 'lidar2ego_rotation')
MATRIX_KEYS = ('lidar2global', 'ego2global', 'lidar2ego')  # (4, 4) when present


CALIB_SHAPES = {'sensor2lidar_rotation': (3, 3), 'sensor2lidar_translation': (3,),
                'cam_intrinsic': (3, 3)}


def has_file_paths(frame, dataset='openscene'):
    """Whether a frame names its files: a token and a `data_path` string for each of the
    dataset's cameras (`camera_names` of its description) it has (frame_problems reports
    missing cameras)."""
    camera_names = get_description(dataset).camera_names
    cams = frame.get('cams') if isinstance(frame, dict) else None
    return (isinstance(cams, dict) and 'token' in frame and
            all(isinstance(cams[cam], dict) and isinstance(cams[cam].get('data_path'), str)
                for cam in camera_names if cam in cams))


def _has_pose(frame):
    """Whether pose_matrices (collect.py) can build the frame's lidar2global and ego2global."""
    if frame.get('lidar2global') is not None and frame.get('lidar2ego') is not None:
        return True
    return all(frame.get(key) is not None for key in POSE_KEYS[3:])


def _flat(values):
    """All values of a list of numeric arrays as one float64 vector, or None when one of
    them is not numeric (or ragged)."""
    try:
        return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in values])
    except (TypeError, ValueError):
        return None


def _finite(values):
    """True when every value of a list of numeric arrays is finite (one numpy call: this runs
    for every frame of trainval)."""
    flat = _flat(values)
    return flat is not None and (bool(np.isfinite(flat.sum())) or bool(np.isfinite(flat).all()))


def _not_finite(key, values):
    """The problem line of values that are not all finite numbers."""
    return f'{key} holds NaN or inf' if _flat(values) is not None else f'{key} is not numeric'


def frame_problems(frame, dataset='openscene'):
    """Problems of a frame dict as short strings (empty when the frame is usable).

    Checks the keys training needs, the dataset's cameras (`camera_names` of its
    description: a name, an OccDescription or a metainfo dict) and their calibration
    shapes, and that `can_bus` (18,) and the poses hold finite numbers."""
    if not isinstance(frame, dict):
        return [f'frame is a {type(frame).__name__}, not a dict']
    problems = [f'missing key {key!r}' for key in REQUIRED_KEYS if key not in frame]
    if problems:
        return problems
    if not isinstance(frame['timestamp'], (int, np.integer)):
        problems.append(f'timestamp is {frame["timestamp"]!r}, expected integer microseconds')
    if np.shape(frame['can_bus']) != (18,):
        problems.append(f'can_bus has shape {np.shape(frame["can_bus"])}, expected (18,)')
    elif not _finite([frame['can_bus']]):
        problems.append(_not_finite('can_bus', [frame['can_bus']]))
    problems += [f'{key} has shape {np.shape(frame[key])}, expected (4, 4)'
                 for key in MATRIX_KEYS if frame.get(key) is not None
                 and np.shape(frame[key]) != (4, 4)]
    if problems:
        return problems
    poses = [key for key in POSE_KEYS if frame.get(key) is not None]
    if not _finite([frame[key] for key in poses]):
        problems += [_not_finite(key, [frame[key]]) for key in poses
                     if not _finite([frame[key]])]
    if not _has_pose(frame):
        problems.append('no pose: neither lidar2global + lidar2ego nor the '
                        'ego2global_* / lidar2ego_* translation and rotation')
    camera_names = get_description(dataset).camera_names
    cams = frame['cams'] if isinstance(frame['cams'], dict) else {}
    missing = [cam for cam in camera_names if cam not in cams]
    if missing:
        problems.append(f'cams lacks {missing}')
    calibrations = []
    for cam in camera_names:
        if cam not in cams:
            continue
        if not isinstance(cams[cam], dict):
            problems.append(f'{cam} entry is a {type(cams[cam]).__name__}, not a dict')
            continue
        lacking = [key for key in CAM_KEYS if key not in cams[cam]]
        if lacking:
            problems.append(f'{cam} lacks {lacking}')
            continue
        if not isinstance(cams[cam]['data_path'], str):
            problems.append(f'{cam} data_path is {cams[cam]["data_path"]!r}, not a path')
        shapes = {key: np.shape(cams[cam][key]) for key in CALIB_KEYS}
        if shapes != CALIB_SHAPES:
            problems.append(f'{cam} calibration shapes {shapes}')
        else:
            calibrations += [cams[cam][key] for key in CALIB_KEYS]
    if calibrations and not _finite(calibrations):
        problems += [f'{cam} calibration holds NaN or inf' for cam in camera_names
                     if isinstance(cams.get(cam), dict)
                     and np.shape(cams[cam].get('cam_intrinsic')) == (3, 3)
                     and not _finite([cams[cam].get(key) for key in CALIB_KEYS])]
    return problems
