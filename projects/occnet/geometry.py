"""Pure geometry helpers: poses, camera projection and occupancy index conversions.

Conventions (shared/OPENSCENE_FORMAT.md): quaternions are [w, x, y, z]; 4x4 matrices act on
column vectors; dense occupancy grids are indexed [x, y, z] with shape (X, Y, Z), the dataset's
grid_shape; sparse labels use index1d = z * X * Y + y * X + x. The grid functions take the grid
(grid_shape, pc_range, voxel_size, free_index) as arguments; those left None are the dataset's
(`dataset`: a name, an OccDescription or a metainfo dict; OpenScene by default).
"""
from collections import defaultdict

import numpy as np
from pyquaternion import Quaternion

from occnet.descriptions import get_description


def quaternion_to_matrix(quat_wxyz):
    """Rotation matrix (3, 3) of a unit quaternion given as [w, x, y, z]."""
    return Quaternion(np.asarray(quat_wxyz, dtype=np.float64)).rotation_matrix


def pose_matrix(translation, rotation):
    """Homogeneous (4, 4) transform from a translation (3,) and a rotation (quaternion [w,x,y,z]
    or a (3, 3) matrix)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    mat = np.eye(4)
    mat[:3, :3] = quaternion_to_matrix(rotation) if rotation.shape == (4,) else rotation
    mat[:3, 3] = np.asarray(translation, dtype=np.float64)
    return mat


def lidar2cam_matrix(sensor2lidar_rotation, sensor2lidar_translation):
    """(4, 4) transform from lidar to camera coordinates (OpenCV camera: x right, y down,
    z forward), built as the baseline does: R = inv(sensor2lidar_rotation), t = -R @ t_s2l."""
    rot = np.linalg.inv(np.asarray(sensor2lidar_rotation, dtype=np.float64))
    mat = np.eye(4)
    mat[:3, :3] = rot
    mat[:3, 3] = -rot @ np.asarray(sensor2lidar_translation, dtype=np.float64)
    return mat


def lidar2img_matrix(cam_info, scale=(1.0, 1.0)):
    """(4, 4) projection from lidar coordinates to pixels of one camera.

    Args:
        cam_info: dict with `sensor2lidar_rotation` (3, 3), `sensor2lidar_translation` (3,)
            and `cam_intrinsic` (3, 3), as in the OpenScene `cams[CAM_*]` entries.
        scale: (sx, sy) image resize factors applied after loading; they scale the first
            two rows of the intrinsic.
    """
    intrinsic = np.eye(4)
    intrinsic[:3, :3] = np.asarray(cam_info['cam_intrinsic'], dtype=np.float64)
    intrinsic[0] *= scale[0]
    intrinsic[1] *= scale[1]
    lidar2cam = lidar2cam_matrix(cam_info['sensor2lidar_rotation'],
                                 cam_info['sensor2lidar_translation'])
    return intrinsic @ lidar2cam


def project_points(points, lidar2img, eps=1e-5):
    """Project lidar points into one camera.

    Args:
        points: (N, 3) metres in the lidar frame.
        lidar2img: (4, 4) projection.
    Returns:
        uv: (N, 2) pixel coordinates (x to the right, y down).
        depth: (N,) metres along the optical axis; a point is in front of the camera where
            depth > eps (uv is meaningless otherwise).
    """
    points = np.asarray(points, dtype=np.float64)
    homo = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ lidar2img.T
    depth = homo[:, 2]
    uv = homo[:, :2] / np.maximum(depth, eps)[:, None]
    return uv, depth


def _described_grid(dataset, grid_shape=None, pc_range=None, voxel_size=None):
    """(grid_shape, pc_range, voxel_size): the given ones, the dataset's where None."""
    desc = get_description(dataset)
    return (desc.grid_shape if grid_shape is None else grid_shape,
            desc.point_cloud_range if pc_range is None else pc_range,
            desc.voxel_size if voxel_size is None else voxel_size)


def voxel_centers(grid_shape=None, pc_range=None, voxel_size=None, dataset='openscene'):
    """Centres of all voxels, (X, Y, Z, 3) metres in the grid's frame (OpenScene: lidar)."""
    grid_shape, pc_range, voxel_size = _described_grid(dataset, grid_shape, pc_range,
                                                       voxel_size)
    axes = [pc_range[i] + (np.arange(grid_shape[i]) + 0.5) * voxel_size for i in range(3)]
    return np.stack(np.meshgrid(*axes, indexing='ij'), axis=-1)


def points_to_voxel_indices(points, grid_shape=None, pc_range=None, voxel_size=None,
                            dataset='openscene'):
    """Integer voxel indices (N, 3) of points (N, 3), metres in the grid's frame, and a mask
    (N,) of those inside."""
    grid_shape, pc_range, voxel_size = _described_grid(dataset, grid_shape, pc_range,
                                                       voxel_size)
    idx = np.floor((np.asarray(points) - np.asarray(pc_range[:3])) / voxel_size).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(grid_shape)), axis=1)
    return idx, inside


def xyz_to_index1d(xyz, grid_shape=None, dataset='openscene'):
    """Flat sparse index z * X * Y + y * X + x of integer voxel coordinates (N, 3)."""
    xyz = np.asarray(xyz, dtype=np.int64)
    size_x, size_y, _ = _described_grid(dataset, grid_shape)[0]
    return xyz[:, 2] * size_x * size_y + xyz[:, 1] * size_x + xyz[:, 0]


def index1d_to_xyz(index1d, grid_shape=None, dataset='openscene'):
    """Inverse of `xyz_to_index1d`: (N,) flat indices to (N, 3) voxel coordinates [x, y, z]."""
    index1d = np.asarray(index1d, dtype=np.int64)
    size_x, size_y, _ = _described_grid(dataset, grid_shape)[0]
    return np.stack([index1d % size_x, (index1d // size_x) % size_y,
                     index1d // (size_x * size_y)], axis=1)


def sparse_to_dense(occ_sparse, grid_shape=None, free_index=None, dataset='openscene'):
    """Dense label grid (X, Y, Z) uint8 from sparse `[index1d, class]` rows (N, 2);
    voxels not listed are free (free_index)."""
    grid_shape = _described_grid(dataset, grid_shape)[0]
    if free_index is None:
        free_index = get_description(dataset).free_index
    occ_sparse = np.asarray(occ_sparse).reshape(-1, 2).astype(np.int64)
    flat = np.full(int(np.prod(grid_shape)), free_index, dtype=np.uint8)  # index1d order
    flat[occ_sparse[:, 0]] = occ_sparse[:, 1]
    return np.ascontiguousarray(flat.reshape(grid_shape[::-1]).transpose(2, 1, 0))


def dense_to_sparse(dense, free_index=None, ignore_index=None, dataset='openscene'):
    """Sparse `[index1d, class]` rows (N, 2) int64, sorted by index1d, of the occupied voxels
    of a dense (X, Y, Z) grid (free and, if ignore_index is given, ignored voxels are left
    out; free_index None: the dataset's)."""
    if free_index is None:
        free_index = get_description(dataset).free_index
    flat = np.asarray(dense).transpose(2, 1, 0).ravel()  # index1d order: z, then y, then x
    keep = flat != free_index
    if ignore_index is not None:
        keep &= flat != ignore_index
    index1d = np.flatnonzero(keep)
    return np.stack([index1d, flat[index1d].astype(np.int64)], axis=1)


def flow_sparse_to_dense(occ_sparse, flow_sparse, grid_shape=None, dataset='openscene'):
    """Dense flow (X, Y, Z, 2) float32 m/s from sparse flow rows (N, 2) aligned with the
    sparse occupancy rows (N, 2); zero where free."""
    grid_shape = _described_grid(dataset, grid_shape)[0]
    occ_sparse = np.asarray(occ_sparse).reshape(-1, 2).astype(np.int64)
    flat = np.zeros((int(np.prod(grid_shape)), 2), dtype=np.float32)  # index1d order
    flat[occ_sparse[:, 0]] = np.asarray(flow_sparse, dtype=np.float32)
    return np.ascontiguousarray(flat.reshape(*grid_shape[::-1], 2).transpose(2, 1, 0, 3))


def relative_pose(src_lidar2global, dst_lidar2global):
    """(4, 4) transform taking points from the src lidar frame into the dst lidar frame."""
    return np.linalg.inv(dst_lidar2global) @ src_lidar2global


# RayIoU's ray origins, shared by the datasets (samples carry them) and the evaluation
SPARSEOCC_ORIGIN_LIMIT_M = 39.0
SPARSEOCC_MAX_ORIGINS = 8


def origins_in_frame(cur_lidar2global, other_lidar2globals, pc_range=None, dataset='openscene'):
    """(O, 3) lidar origins of other frames (and the current one) in the current lidar frame,
    keeping those inside the grid's x-y range (pc_range, metres; None: the dataset's)."""
    pc_range = get_description(dataset).point_cloud_range if pc_range is None else pc_range
    poses = [cur_lidar2global] + list(other_lidar2globals)
    inverse = np.linalg.inv(np.asarray(cur_lidar2global, dtype=np.float64))
    origins = np.stack([(inverse @ np.asarray(p, dtype=np.float64))[:3, 3] for p in poses])
    inside = np.all((origins[:, :2] > np.asarray(pc_range[:2])) &
                    (origins[:, :2] < np.asarray(pc_range[3:5])), axis=1)
    return origins[inside]


def sparseocc_ray_origins(cur_lidar2ego, cur_lidar2global, scene_lidar2globals,
                          limit_m=SPARSEOCC_ORIGIN_LIMIT_M,
                          max_origins=SPARSEOCC_MAX_ORIGINS):
    """(O, 3) RayIoU ray origins in the current ego frame, metres, as SparseOcc selects
    them (evaluation/sparseocc_rays.py): the scene's lidar origins in the current ego frame,
    those with |x| and |y| below limit_m, at most max_origins of them evenly spread in time.

    Args:
        cur_lidar2ego, cur_lidar2global: (4, 4) of the current frame.
        scene_lidar2globals: (4, 4) of every key frame of the scene in time order, the
            current one included.
    """
    to_ego = (np.asarray(cur_lidar2ego, dtype=np.float64)
              @ np.linalg.inv(np.asarray(cur_lidar2global, dtype=np.float64)))
    origins = np.stack([(to_ego @ np.asarray(pose, dtype=np.float64))[:3, 3]
                        for pose in scene_lidar2globals])
    origins = origins[(np.abs(origins[:, 0]) < limit_m) & (np.abs(origins[:, 1]) < limit_m)]
    if len(origins) > max_origins:
        origins = origins[np.round(np.linspace(0, len(origins) - 1, max_origins))
                          .astype(np.int64)]
    return origins


def scene_origins(frames):
    """{token: (O, 3) ray origins in that frame's ego frame}: SparseOcc's selection among
    the lidar origins of every frame of its scene (`scene_token`), in time order. Frames are
    dicts with `token`, `scene_token`, `timestamp`, `lidar2ego` and `lidar2global` (4, 4)."""
    scenes = defaultdict(list)
    for frame in frames:
        scenes[frame['scene_token']].append(frame)
    origins = {}
    for scene in scenes.values():
        scene.sort(key=lambda f: f['timestamp'])
        poses = [f['lidar2global'] for f in scene]
        for frame in scene:
            origins[frame['token']] = sparseocc_ray_origins(frame['lidar2ego'],
                                                            frame['lidar2global'], poses)
    return origins
