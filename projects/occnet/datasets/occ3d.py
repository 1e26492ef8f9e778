"""Occ3D-nuScenes: its infos flavours turned into occnet frames, and its labels.

Two published infos flavours are read, both `{'infos': [frame, ...], 'metadata': ...}`:
- the CVPR 2023 occupancy challenge's `occ_infos_temporal_{train,val}.pkl`: per frame
  `token`, `scene_token`, `occ_gt_path` (`gts/<scene_name>/<token>/labels.npz`), `prev` /
  `next` tokens ('' for none), `can_bus` (18,), `timestamp` (us), `lidar_path`,
  `lidar2ego_*` and `ego2global_*` (translation (3,), rotation quaternion [w, x, y, z]) and
  `cams[CAM]` with `data_path`, `sensor2lidar_rotation` (3, 3), `sensor2lidar_translation`
  (3,) and `cam_intrinsic` (3, 3);
- BEVDet / FlashOcc's `bevdetv2-nuscenes_infos_{train,val}.pkl`: the same frame keys without
  `occ_gt_path`, with `occ_path` the label folder (`gts/<scene_name>/<token>`, holding
  `labels.npz`); its cams also carry `sensor2ego_*` and `ego2global_*`, from which the
  camera-to-lidar transform is derived when `sensor2lidar_*` is missing.

`occ3d_frame` turns either into an occnet frame: the OpenScene frame keys (contract 3:
`token`, `scene_token`, `scene_name`, `timestamp`, `frame_idx`, `can_bus`, `lidar_path`,
`lidar2ego`, `ego2global`, `lidar2global` (4, 4), `cams[CAM]` with `data_path`,
`sensor2lidar_rotation`, `sensor2lidar_translation`, `cam_intrinsic`, `sample_prev`,
`sample_next`) plus `occ_gt_path`. Paths become relative to the nuScenes root (`samples/...`,
`sweeps/...`, `gts/...`), whatever prefix the pickle wrote (`./data/nuscenes/`, absolute).

The Occ3D grid lives in the **ego** frame (occnet.descriptions.OCC3D_NUSCENES): a grid
point projects into a camera by `grid2img_matrix` = lidar2img @ ego2lidar.
"""
import os
import zipfile

import numpy as np

from occnet.datasets.collect import pose_matrices
from occnet.datasets.infos import DataError, MissingFileError, load_infos
from occnet.geometry import lidar2img_matrix, pose_matrix, relative_pose

LABEL_KEYS = ('semantics', 'mask_lidar', 'mask_camera')
PATH_ROOTS = ('samples', 'sweeps', 'gts')  # the nuScenes-root folders paths start from


def root_relative(path, roots=PATH_ROOTS):
    """`path` from its last `samples/`, `sweeps/` or `gts/` component on (so
    './data/nuscenes/samples/CAM_FRONT/x.jpg' -> 'samples/CAM_FRONT/x.jpg'); unchanged when
    it holds none of them."""
    if not path:
        return path
    parts = str(path).replace('\\', '/').split('/')
    starts = [i for i, part in enumerate(parts) if part in roots]
    return '/'.join(parts[starts[-1]:]) if starts else str(path)


def infos_flavour(frame):
    """'challenge' (`occ_gt_path`), 'bevdet' (`occ_path`) or 'occnet' (already converted,
    `occ_gt_path` with 4x4 poses); DataError for a frame with no label path."""
    if 'lidar2global' in frame and 'occ_gt_path' in frame:
        return 'occnet'
    if 'occ_gt_path' in frame:
        return 'challenge'
    if 'occ_path' in frame:
        return 'bevdet'
    raise DataError(f"frame {frame.get('token')!r} has neither `occ_gt_path` (CVPR 2023 "
                    "challenge infos) nor `occ_path` (BEVDet infos): these are not Occ3D "
                    'infos; write them with tools/create_occ3d_infos.py')


def camera_to_lidar(cam, lidar2ego, ego2global):
    """(R (3, 3), t (3,)) camera -> lidar of one camera entry: its `sensor2lidar_*` when
    present, else through the camera's own ego pose (`sensor2ego_*`, `ego2global_*`, at the
    camera's timestamp) and the frame's lidar pose."""
    if 'sensor2lidar_rotation' in cam:
        return (np.asarray(cam['sensor2lidar_rotation'], dtype=np.float64),
                np.asarray(cam['sensor2lidar_translation'], dtype=np.float64))
    sensor2ego = pose_matrix(cam['sensor2ego_translation'], cam['sensor2ego_rotation'])
    cam_ego2global = pose_matrix(cam['ego2global_translation'], cam['ego2global_rotation'])
    sensor2lidar = relative_pose(cam_ego2global @ sensor2ego, ego2global @ lidar2ego)
    return sensor2lidar[:3, :3], sensor2lidar[:3, 3]


def occ3d_frame(info, camera_names):
    """One occnet frame from a challenge or BEVDet infos frame (module docstring).

    Raises DataError naming the frame and the key when a key the frame needs is missing."""
    flavour = infos_flavour(info)
    if flavour == 'occnet':
        return info
    token = info.get('token')
    try:
        lidar2ego, ego2global, lidar2global = pose_matrices(info)
        cams = {}
        for name in camera_names:
            cam = info['cams'][name]
            rotation, translation = camera_to_lidar(cam, lidar2ego, ego2global)
            cams[name] = dict(data_path=root_relative(cam['data_path']),
                              sensor2lidar_rotation=rotation,
                              sensor2lidar_translation=translation,
                              cam_intrinsic=np.asarray(cam['cam_intrinsic'], dtype=np.float64))
        if flavour == 'challenge':
            label = root_relative(info['occ_gt_path'])
        else:
            label = root_relative(info['occ_path']).rstrip('/') + '/labels.npz'
        timestamp = int(info['timestamp'])
    except KeyError as err:
        raise DataError(f'Occ3D infos frame {token!r} ({flavour} flavour) lacks {err}; '
                        'regenerate the infos (tools/create_occ3d_infos.py)') from None
    parts = label.split('/')  # gts/<scene_name>/<token>/labels.npz
    scene_name = parts[1] if len(parts) >= 4 and parts[0] == 'gts' else info.get('scene_name')
    can_bus = np.asarray(info.get('can_bus', np.zeros(18)), dtype=np.float64)
    return dict(
        token=token, scene_token=info.get('scene_token'),
        scene_name=scene_name or info.get('scene_token'), timestamp=timestamp,
        frame_idx=info.get('frame_idx'), can_bus=can_bus,
        lidar_path=root_relative(info.get('lidar_path')) or None,
        lidar2ego=lidar2ego, ego2global=ego2global, lidar2global=lidar2global,
        cams=cams, occ_gt_path=label,
        sample_prev=info.get('prev') or None, sample_next=info.get('next') or None)


def load_occ3d_infos(path, camera_names):
    """occnet frames (`occ3d_frame`) of an Occ3D infos pickle of either flavour, or of one
    tools/create_occ3d_infos.py wrote; DataError naming the file on a bad pickle."""
    frames = load_infos(path)
    try:
        return [occ3d_frame(info, camera_names) for info in frames]
    except DataError as err:
        raise DataError(f'{path}: {err}') from None


def grid2img_matrix(frame, cam_name, scale=(1.0, 1.0)):
    """(4, 4) projection of ego-frame (grid) points into pixels of one camera:
    lidar2img @ ego2lidar, with lidar2img from the camera's sensor2lidar and intrinsics
    (geometry.lidar2img_matrix, `scale` for a resized image)."""
    ego2lidar = np.linalg.inv(np.asarray(frame['lidar2ego'], dtype=np.float64))
    return lidar2img_matrix(frame['cams'][cam_name], scale) @ ego2lidar


def load_occ3d_label(path, description):
    """(semantics, mask_lidar, mask_camera) of one `labels.npz`: uint8 semantics in
    0..free_index and bool masks, each of the description's grid shape, indexed [x, y, z].

    Raises DataError naming the file when it is not an npz, lacks a key, or holds the wrong
    shape or a label outside 0..free_index; MissingFileError (a DataError and a
    FileNotFoundError) when it is missing."""
    if not os.path.isfile(path):
        raise MissingFileError(f'Occ3D label not found: {path} (the nuScenes root must hold '
                               'gts/ from the Occ3D-nuScenes download; check data_root)')
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in LABEL_KEYS if key in npz.files}
            keys = npz.files
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f'cannot read Occ3D label {path}: {type(err).__name__}: {err} '
                        '(truncated download? extract gts.tar.gz again)') from None
    missing = [key for key in LABEL_KEYS if key not in arrays]
    if missing:
        raise DataError(f'Occ3D label {path} lacks {missing} (has {keys}); it is not an '
                        'Occ3D labels.npz')
    shape = tuple(description.grid_shape)
    for key, array in arrays.items():
        if array.shape != shape:
            raise DataError(f'Occ3D label {path}: `{key}` has shape {array.shape}, the '
                            f'{description.name} grid is {shape} [x, y, z]')
    semantics = arrays['semantics']
    if semantics.size and int(semantics.max()) > description.free_index:
        raise DataError(f'Occ3D label {path}: class {int(semantics.max())} in `semantics`, '
                        f'{description.name} labels are 0..{description.free_index}')
    return (semantics.astype(np.uint8), arrays['mask_lidar'].astype(bool),
            arrays['mask_camera'].astype(bool))
