"""Reading OpenScene occupancy label files, validated, into dense grids."""
import os

import numpy as np

from occnet.constants import GRID_SHAPE, NUM_CLASSES
from occnet.datasets.infos import VERIFY_HINT, DataError, MissingFileError
from occnet.geometry import flow_sparse_to_dense, sparse_to_dense

NUM_VOXELS = int(np.prod(GRID_SHAPE))


def load_npy(path, token, what='label file'):
    """np.load with errors that name the file and the frame token."""
    if not os.path.isfile(path):
        raise MissingFileError(f'missing {what} {path} for frame token {token}; '
                               f'{VERIFY_HINT}')
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f'unreadable {what} {path} for frame token {token} ({err}); '
                        f'{VERIFY_HINT}') from err


def load_occupancy(path, token, dense=True):
    """Labels of a `NNN_occ_final.npy` file of integer (M, 2) [index1d, class] rows, after
    checking shape, dtype and ranges: dense (200, 200, 16) uint8 (free = 11), or the
    validated (M, 2) rows themselves when dense is False."""
    occ = load_npy(path, token)
    if occ.ndim != 2 or occ.shape[1] != 2 or not np.issubdtype(occ.dtype, np.integer):
        raise DataError(f'label {path} (frame {token}) has shape {occ.shape} dtype '
                        f'{occ.dtype}; expected integer (N, 2) [index1d, class]; {VERIFY_HINT}')
    bad_index = (occ[:, 0] < 0) | (occ[:, 0] >= NUM_VOXELS)
    bad_class = (occ[:, 1] < 0) | (occ[:, 1] >= NUM_CLASSES)
    if bad_index.any():
        raise DataError(f'label {path} (frame {token}) holds voxel indices outside '
                        f'[0, {NUM_VOXELS}), e.g. {int(occ[bad_index][0, 0])}; {VERIFY_HINT}')
    if bad_class.any():
        raise DataError(f'label {path} (frame {token}) holds classes outside '
                        f'[0, {NUM_CLASSES}), e.g. {int(occ[bad_class][0, 1])}; {VERIFY_HINT}')
    return sparse_to_dense(occ) if dense else occ


def load_flow(path, token, occ_sparse):
    """Dense (200, 200, 16, 2) float32 flow (vx, vy m/s, lidar frame; 0 where free) from a
    `NNN_flow_final.npy` file of (M, 2) rows aligned with the (M, 2) occupancy rows."""
    flow = load_npy(path, token, 'flow file')
    if flow.shape != (len(occ_sparse), 2) or not np.issubdtype(flow.dtype, np.floating):
        raise DataError(f'flow {path} (frame {token}) has shape {flow.shape} dtype '
                        f'{flow.dtype}; expected float ({len(occ_sparse)}, 2), one row per '
                        f'occupied voxel of the occupancy file; {VERIFY_HINT}')
    if not np.all(np.isfinite(flow)):
        raise DataError(f'flow {path} (frame {token}) holds NaN or inf; {VERIFY_HINT}')
    return flow_sparse_to_dense(occ_sparse, flow)


def load_visible_mask(path, token):
    """(200, 200, 16) bool, False at the voxels listed (1-D index1d) in an invalid file."""
    invalid = load_npy(path, token, 'invalid-voxel file').reshape(-1)
    if not np.issubdtype(invalid.dtype, np.integer) or (
            invalid.size and (invalid.min() < 0 or invalid.max() >= NUM_VOXELS)):
        raise DataError(f'invalid-voxel file {path} (frame {token}) must hold integer voxel '
                        f'indices in [0, {NUM_VOXELS}); {VERIFY_HINT}')
    visible = np.ones(NUM_VOXELS, dtype=bool)  # in index1d order: z, then y, then x
    visible[invalid] = False
    return np.ascontiguousarray(visible.reshape(GRID_SHAPE[::-1]).transpose(2, 1, 0))
