"""How a dataset's frames and dense labels are read: the one place the data tools
(verify_dataset, dataset_stats, visualize) and anyone else go through.

Frames are read by the dataset's name (`read_frames`): OpenScene infos are occnet's own
lists (tools/collect_data.py, contract 3); Occ3D-nuScenes infos are any flavour
occnet.datasets.occ3d reads (CVPR 2023 challenge, BEVDet, tools/create_occ3d_infos.py),
turned into occnet frames whose paths are relative to the nuScenes root.

A frame names its label file by one key, and the key says the file's layout (`LABEL_KEYS`):
`occ_gt_final_path` sparse [index1d, class] rows (OpenScene; the camera mask from
`occ_invalid_path`) or `occ_gt_path` a dense `labels.npz` (Occ3D; its `mask_camera`). The
dataset's description gives the grid and the classes the labels must fit, so sparse rows
holding Occ3D classes read too.
"""
import numpy as np

from occnet.datasets.infos import DataError, load_infos, resolve
from occnet.datasets.labels import load_occupancy, load_visible_mask
from occnet.datasets.occ3d import (grid2img_matrix, infos_flavour, load_occ3d_label,
                                   occ3d_frame)
from occnet.descriptions import get_description
from occnet.geometry import lidar2img_matrix

LABEL_KEYS = ('occ_gt_final_path', 'occ_gt_path')  # sparse .npy (OpenScene), labels.npz (Occ3D)


def label_path(frame):
    """The label file a frame names (as written in the infos), or None when it has none."""
    return next((frame[key] for key in LABEL_KEYS if frame.get(key)), None)


def infos_dataset(infos):
    """'occ3d_nuscenes' when raw infos frames name an Occ3D label (`occ_gt_path` or BEVDet's
    `occ_path`), else 'openscene'. infos: the frame dicts of load_infos."""
    first = next((frame for frame in infos if isinstance(frame, dict)), {})
    try:
        infos_flavour(first)  # one definition of what an Occ3D frame names
    except DataError:
        return 'openscene'
    return 'occ3d_nuscenes'


def frames_from_infos(infos, dataset, source, bad_frames=None):
    """occnet frames of raw infos frames (load_infos) of `dataset`.

    Args:
        infos: list of frame dicts as the pickle holds them.
        dataset: name, OccDescription or metainfo dict.
        source: the infos file, named in errors.
        bad_frames: a list to collect (token, reason) of Occ3D frames that cannot be turned
            into occnet frames (left out); None: raise DataError on the first.
    """
    desc = get_description(dataset)
    if desc.name != 'occ3d_nuscenes':
        return infos
    frames = []
    for info in infos:
        try:
            frames.append(occ3d_frame(info, desc.camera_names))
        except DataError as err:
            if bad_frames is None:
                raise DataError(f'{source}: {err}') from None
            bad_frames.append((info.get('token'), str(err)))
    return frames


def read_frames(infos_path, dataset, bad_frames=None):
    """occnet frames of an infos pickle of `dataset` (a name, OccDescription or metainfo
    dict): OpenScene's collected list as it is, Occ3D's flavours through occ3d_frame
    (`frames_from_infos`; bad_frames as there). Raises DataError naming the file."""
    return frames_from_infos(load_infos(infos_path), dataset, infos_path, bad_frames)


def read_dense_label(frame, data_root, dataset):
    """(semantics (X, Y, Z) uint8 in 0..free_index, mask_camera (X, Y, Z) bool or None) of a
    labelled frame, indexed [x, y, z] on the dataset's grid; paths resolve against data_root.

    mask_camera is True where the cameras see the voxel: Occ3D's `mask_camera`, OpenScene's
    voxels not in `occ_invalid_path` (None without one). Raises MissingFileError for a
    missing file and DataError naming the file for a bad one (or a frame with no label)."""
    desc, token = get_description(dataset), frame.get('token')
    if frame.get('occ_gt_path'):
        semantics, _, mask_camera = load_occ3d_label(resolve(data_root, frame['occ_gt_path']),
                                                     desc)
        return semantics, mask_camera
    if not frame.get('occ_gt_final_path'):
        raise DataError(f'frame {token} names no label file (none of {list(LABEL_KEYS)})')
    semantics = load_occupancy(resolve(data_root, frame['occ_gt_final_path']), token,
                               dataset=desc)
    if not frame.get('occ_invalid_path'):
        return semantics, None
    return semantics, load_visible_mask(resolve(data_root, frame['occ_invalid_path']), token,
                                        dataset=desc)


def grid2img_matrices(frame, dataset):
    """(N_cam, 4, 4) projections of grid points into each camera's original pixels, cameras
    in the description's order: lidar2img for a grid in the lidar frame (OpenScene),
    lidar2img @ ego2lidar for one in the ego frame (Occ3D, occ3d.grid2img_matrix)."""
    desc = get_description(dataset)
    if desc.grid_frame == 'ego':
        return np.stack([grid2img_matrix(frame, cam) for cam in desc.camera_names])
    return np.stack([lidar2img_matrix(frame['cams'][cam]) for cam in desc.camera_names])
