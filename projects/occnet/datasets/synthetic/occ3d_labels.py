"""Occ3D-nuScenes labels of a synthetic frame: the Occ3D class of every voxel, the camera mask
and the LiDAR mask, in the ego grid of OCC3D_NUSCENES ([x, y, z], (200, 200, 16)).

Classes: objects by their nuPlan category (vehicle -> car, or truck when longer than
TRUCK_MIN_LENGTH; czone_sign -> manmade; generic_object -> others), background voxels by their
kind (layout.BACKGROUND_KINDS, named as the Occ3D classes), everything else free.
mask_lidar: every voxel a ray of the sweep passes through on its way from the lidar to its
return, and the voxel the return lies in (one sweep; Occ3D accumulates many).
"""
import io
import zipfile

import numpy as np

from occnet.datasets.synthetic.layout import BACKGROUND_KINDS
from occnet.datasets.synthetic.shapes import VEHICLE_VARIANTS
from occnet.descriptions import OCC3D_NUSCENES

OCC3D_CLASS = {name: i for i, name in enumerate(OCC3D_NUSCENES.class_names)}
CATEGORY_CLASS = {'vehicle': 'car', 'pedestrian': 'pedestrian', 'traffic_cone': 'traffic_cone',
                  'barrier': 'barrier', 'bicycle': 'bicycle', 'czone_sign': 'manmade',
                  'generic_object': 'others'}
# metres: shapes.py's trucks are 6.5-8.5 m long, its cars and vans at most 5.6 m
TRUCK_MIN_LENGTH = 6.0
assert max(VEHICLE_VARIANTS[v][1][0] for v in ('car', 'van')) < TRUCK_MIN_LENGTH \
    <= VEHICLE_VARIANTS['truck'][0][0]
KIND_CLASS = np.array([OCC3D_CLASS[name] for name in BACKGROUND_KINDS], dtype=np.uint8)
END_DEPTH = 0.01  # metres a ray is followed behind its return (a surface on a voxel face)
RAYS_PER_CHUNK = 4096
NPZ_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip member time: same labels, same bytes


def object_classes(categories, sizes):
    """Occ3D class (N,) uint8 of N objects from their nuPlan categories (N,) and sizes (N, 3)
    l, w, h metres (world.objects.category and .size)."""
    unknown = sorted(set(categories) - set(CATEGORY_CLASS))
    if unknown:
        raise ValueError(f'no Occ3D class for object categories {unknown}; known: '
                         f'{sorted(CATEGORY_CLASS)} (occ3d_labels.CATEGORY_CLASS)')
    classes = np.array([OCC3D_CLASS[CATEGORY_CLASS[c]] for c in categories], dtype=np.uint8)
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 3)
    trucks = (np.array(categories, dtype=object) == 'vehicle') & (sizes[:, 0] >= TRUCK_MIN_LENGTH)
    classes[trucks] = OCC3D_CLASS['truck']
    return classes


def occ3d_semantics(owner, kinds, classes):
    """Occ3D labels of a voxelised frame (voxelize.voxelize_frame in the ego grid).

    Args:
        owner: (X, Y, Z) int32 object index per voxel, -1 for none.
        kinds: (X, Y, Z) int8 background kind per voxel, -1 for none.
        classes: (N,) uint8 Occ3D class per object (object_classes).
    Returns:
        (X, Y, Z) uint8 in 0..17 (17 free).
    """
    semantics = np.full(owner.shape, OCC3D_NUSCENES.free_index, dtype=np.uint8)
    background = (owner < 0) & (kinds >= 0)
    semantics[background] = KIND_CLASS[kinds[background]]
    objects = owner >= 0
    semantics[objects] = np.asarray(classes, dtype=np.uint8)[owner[objects]]
    return semantics


def camera_mask(visible, grid_shape):
    """(X, Y, Z) uint8 mask_camera of the renderer's visibility (X*Y*Z,) in index1d order."""
    return np.asarray(visible, dtype=np.uint8).reshape(grid_shape[::-1]).transpose(2, 1, 0).copy()


def _traversal(g0, gd, t0, t1, shape):
    """Flat [x, y, z] indices of the voxels M rays cross: start at grid coordinates g0 (3,),
    move by gd (M, 3) per unit t, between t0 and t1 (M,); grid units are voxels."""
    nudge = 1e-6 / np.abs(gd).max(axis=1)  # a micro-voxel past a plane: its far side
    cells = [np.floor(g0 + (t0 + nudge)[:, None] * gd)]
    for axis in range(3):
        d = gd[:, axis]
        a, b = g0[axis] + t0 * d, g0[axis] + t1 * d
        first = np.where(d > 0, np.floor(a) + 1, np.ceil(a) - 1)
        count = np.where(d > 0, np.ceil(b) - 1 - np.floor(a), np.ceil(a) - 1 - np.floor(b))
        count = np.where(d == 0, 0, np.maximum(count, 0)).astype(np.int64)
        ray = np.repeat(np.arange(len(d)), count)
        step = np.arange(len(ray)) - np.repeat(np.cumsum(count) - count, count)
        plane = first[ray] + np.sign(d[ray]) * step
        t = (plane - g0[axis]) / d[ray] + nudge[ray]
        cell = np.floor(g0 + t[:, None] * gd[ray])
        cell[:, axis] = np.where(d[ray] > 0, plane, plane - 1)
        cells.append(cell)
    cells = np.clip(np.concatenate(cells), 0, np.asarray(shape) - 1).astype(np.int64)
    return (cells[:, 0] * shape[1] + cells[:, 1]) * shape[2] + cells[:, 2]


def lidar_mask(origin, points, description=OCC3D_NUSCENES):
    """mask_lidar of one sweep: voxels its rays pass through or end in (exact traversal).

    Args:
        origin: (3,) the lidar's position in the grid frame, metres.
        points: (N, 3) the returns in the grid frame, metres.
        description: OccDescription giving the grid (range, voxel size, shape).
    Returns:
        (X, Y, Z) uint8 {0, 1}.
    """
    shape = tuple(description.grid_shape)
    lower = np.asarray(description.point_cloud_range[:3], dtype=np.float64)
    voxel_size = description.voxel_size
    origin = np.asarray(origin, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    offset = points - origin
    length = np.linalg.norm(offset, axis=1, keepdims=True)
    keep = length[:, 0] > 0
    ends = points[keep] + END_DEPTH * offset[keep] / length[keep]
    g0 = (origin - lower) / voxel_size
    mask = np.zeros(int(np.prod(shape)), dtype=np.uint8)
    for lo in range(0, len(ends), RAYS_PER_CHUNK):
        gd = (ends[lo:lo + RAYS_PER_CHUNK] - origin) / voxel_size
        with np.errstate(divide='ignore', invalid='ignore'):
            t_a, t_b = -g0 / gd, (np.asarray(shape) - g0) / gd
        inside = (g0 >= 0) & (g0 <= np.asarray(shape))
        t_near = np.where(gd == 0, np.where(inside, -np.inf, np.inf), np.minimum(t_a, t_b))
        t_far = np.where(gd == 0, np.where(inside, np.inf, -np.inf), np.maximum(t_a, t_b))
        t0, t1 = np.maximum(t_near.max(axis=1), 0.0), np.minimum(t_far.min(axis=1), 1.0)
        crossing = t0 < t1
        if crossing.any():
            mask[_traversal(g0, gd[crossing], t0[crossing], t1[crossing], shape)] = 1
    return mask.reshape(shape)


def write_labels(path, semantics, mask_lidar, mask_camera):
    """Write an Occ3D `labels.npz` (compressed; the same arrays always give the same bytes).

    Args:
        path: pathlib.Path of the file (its folder is created).
        semantics, mask_lidar, mask_camera: (X, Y, Z) arrays, written as uint8.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {'semantics': semantics, 'mask_lidar': mask_lidar, 'mask_camera': mask_camera}
    with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array, dtype=np.uint8))
            member = zipfile.ZipInfo(f'{key}.npy', date_time=NPZ_DATE)
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, buffer.getvalue())
