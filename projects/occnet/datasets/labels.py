"""Reading sparse occupancy label files (OpenScene's format), validated, into dense grids.

The grid shape and label range come from a dataset description (`dataset`: a name, an
OccDescription or a metainfo dict; occnet/descriptions.py)."""
import os

import numpy as np

from occnet.datasets.infos import VERIFY_HINT, DataError, MissingFileError
from occnet.descriptions import get_description
from occnet.geometry import flow_sparse_to_dense, sparse_to_dense


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


def load_occupancy(path, token, dense=True, dataset='openscene'):
    """Labels of a `NNN_occ_final.npy` file of integer (M, 2) [index1d, class] rows, after
    checking shape, dtype and ranges (voxel indices within the dataset's grid, classes in
    0..free_index): dense (X, Y, Z) = grid_shape uint8 filled with free_index (OpenScene:
    (200, 200, 16), free = 11), or the validated (M, 2) rows themselves when dense is False."""
    desc = get_description(dataset)
    num_voxels = int(np.prod(desc.grid_shape))
    occ = load_npy(path, token)
    if occ.ndim != 2 or occ.shape[1] != 2 or not np.issubdtype(occ.dtype, np.integer):
        raise DataError(f'label {path} (frame {token}) has shape {occ.shape} dtype '
                        f'{occ.dtype}; expected integer (N, 2) [index1d, class]; {VERIFY_HINT}')
    bad_index = (occ[:, 0] < 0) | (occ[:, 0] >= num_voxels)
    bad_class = (occ[:, 1] < 0) | (occ[:, 1] >= desc.num_classes)
    if bad_index.any():
        raise DataError(f'label {path} (frame {token}) holds voxel indices outside '
                        f'[0, {num_voxels}), e.g. {int(occ[bad_index][0, 0])}; {VERIFY_HINT}')
    if bad_class.any():
        raise DataError(f'label {path} (frame {token}) holds classes outside '
                        f'[0, {desc.num_classes}), e.g. {int(occ[bad_class][0, 1])}; '
                        f'{VERIFY_HINT}')
    if not dense:
        return occ
    return sparse_to_dense(occ, grid_shape=desc.grid_shape, free_index=desc.free_index)


def load_flow(path, token, occ_sparse, dataset='openscene'):
    """Dense (X, Y, Z, 2) = grid_shape + (2,) float32 flow (vx, vy m/s in the grid frame; 0
    where free; OpenScene: (200, 200, 16, 2), lidar frame) from a `NNN_flow_final.npy` file
    of (M, 2) rows aligned with the (M, 2) occupancy rows."""
    desc = get_description(dataset)
    flow = load_npy(path, token, 'flow file')
    if flow.shape != (len(occ_sparse), 2) or not np.issubdtype(flow.dtype, np.floating):
        raise DataError(f'flow {path} (frame {token}) has shape {flow.shape} dtype '
                        f'{flow.dtype}; expected float ({len(occ_sparse)}, 2), one row per '
                        f'occupied voxel of the occupancy file; {VERIFY_HINT}')
    if not np.all(np.isfinite(flow)):
        raise DataError(f'flow {path} (frame {token}) holds NaN or inf; {VERIFY_HINT}')
    return flow_sparse_to_dense(occ_sparse, flow, grid_shape=desc.grid_shape)


def load_visible_mask(path, token, dataset='openscene'):
    """(X, Y, Z) = grid_shape bool (OpenScene: (200, 200, 16)), False at the voxels listed
    (1-D index1d) in an invalid file."""
    grid_shape = tuple(get_description(dataset).grid_shape)
    num_voxels = int(np.prod(grid_shape))
    invalid = load_npy(path, token, 'invalid-voxel file').reshape(-1)
    if not np.issubdtype(invalid.dtype, np.integer) or (
            invalid.size and (invalid.min() < 0 or invalid.max() >= num_voxels)):
        raise DataError(f'invalid-voxel file {path} (frame {token}) must hold integer voxel '
                        f'indices in [0, {num_voxels}); {VERIFY_HINT}')
    visible = np.ones(num_voxels, dtype=bool)  # in index1d order: z, then y, then x
    visible[invalid] = False
    return np.ascontiguousarray(visible.reshape(grid_shape[::-1]).transpose(2, 1, 0))
