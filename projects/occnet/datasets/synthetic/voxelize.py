"""Dense per-frame occupancy, flow and background-kind labels of the synthetic scenes, in the
frame's lidar grid.

A voxel is occupied when a solid overlaps it with positive volume: the ground (from the bottom of
GROUND_LAYER up to the terrain surface) or a part (parts.py). Later parts win where several
overlap one voxel, so objects, listed after the structures, keep their class.
"""
import numpy as np

from occnet.datasets.synthetic.layout import (NO_KIND, TERRAIN_MAX_HEIGHT, ground_kind,
                                              terrain_regions)
from occnet.datasets.synthetic.parts import expand_groups, rectangles_overlap
from occnet.datasets.synthetic.rig import GROUND_Z
from occnet.descriptions import OPENSCENE

# Voxel layer whose top face is the road surface (z index 3 for OpenScene's grid).
GROUND_LAYER = int(round((GROUND_Z - OPENSCENE.point_cloud_range[2]) / OPENSCENE.voxel_size)) - 1
OVERLAP_EPS = 1e-6  # metres; solids that only touch a voxel's face do not occupy it
# the terrain reaches one layer above the road at most
assert TERRAIN_MAX_HEIGHT[1] < OPENSCENE.voxel_size


def ground_columns(layout, lidar2global):
    """Top ground layer and background kind of every column of the grid.

    The ground is solid from the bottom of GROUND_LAYER up to the road plane, and up to the
    terrain surface where the terrain rises (by less than a voxel). A column therefore reaches
    one layer higher exactly where it overlaps a green zone's terrain.

    Args:
        layout: RoadLayout of the log.
        lidar2global: (4, 4) pose of the frame's lidar (a rotation about z and a translation).
    Returns:
        top: (X, Y) int index of the highest ground voxel (GROUND_LAYER or GROUND_LAYER + 1).
        kind: (X, Y) int8 background kind of the ground (layout.BACKGROUND_KINDS).
    """
    size_x, size_y, _ = OPENSCENE.grid_shape
    pc_range, voxel_size = OPENSCENE.point_cloud_range, OPENSCENE.voxel_size
    local = np.stack(np.meshgrid(
        pc_range[0] + (np.arange(size_x) + 0.5) * voxel_size,
        pc_range[1] + (np.arange(size_y) + 0.5) * voxel_size, indexing='ij'),
        axis=-1).reshape(-1, 2)
    centres = local @ lidar2global[:2, :2].T + lidar2global[:2, 3]
    kind = ground_kind(layout, *layout.road_coordinates(centres)).astype(np.int8)
    yaw = np.arctan2(lidar2global[1, 0], lidar2global[0, 0])
    column_half = np.full(2, voxel_size / 2 - OVERLAP_EPS)  # touching is not overlapping
    raised = np.zeros(len(centres), dtype=bool)
    for zone_centre, zone_half in terrain_regions(layout):
        raised |= rectangles_overlap(centres, yaw, column_half, zone_centre, 0.0, zone_half)
    top = GROUND_LAYER + raised.astype(np.int64)
    return top.reshape(size_x, size_y), kind.reshape(size_x, size_y)


def part_voxels(boxes):
    """Voxels overlapped with positive volume by yaw boxes.

    Args:
        boxes: (N, 7) x, y, z, l, w, h, yaw in the lidar frame.
    Returns:
        part: (M,) int64 box of each overlap; xyz: (M, 3) int64 voxel coordinates inside the grid.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    lower, voxel_size = np.asarray(OPENSCENE.point_cloud_range[:3]), OPENSCENE.voxel_size
    cos, sin = np.abs(np.cos(boxes[:, 6])), np.abs(np.sin(boxes[:, 6]))
    half_l, half_w = boxes[:, 3] / 2, boxes[:, 4] / 2
    reach = np.stack([cos * half_l + sin * half_w, sin * half_l + cos * half_w,
                      boxes[:, 5] / 2], axis=1)
    lo = np.floor((boxes[:, :3] - reach + OVERLAP_EPS - lower) / voxel_size).astype(np.int64)
    hi = np.ceil((boxes[:, :3] + reach - OVERLAP_EPS - lower) / voxel_size).astype(np.int64)
    lo = np.clip(lo, 0, np.asarray(OPENSCENE.grid_shape))
    hi = np.clip(hi, 0, np.asarray(OPENSCENE.grid_shape))  # exclusive
    span = np.clip(hi - lo, 0, None)
    # x-y columns of each box's bounding rectangle, kept where the rectangles overlap (SAT)
    part, rank = expand_groups(span[:, 0] * span[:, 1])
    ix = lo[part, 0] + rank // span[part, 1]
    iy = lo[part, 1] + rank % span[part, 1]
    centre_x = lower[0] + (ix + 0.5) * voxel_size - boxes[part, 0]
    centre_y = lower[1] + (iy + 0.5) * voxel_size - boxes[part, 1]
    c, s = np.cos(boxes[part, 6]), np.sin(boxes[part, 6])
    square = voxel_size / 2 * (np.abs(c) + np.abs(s))
    inside = ((np.abs(centre_x) < reach[part, 0] + voxel_size / 2 - OVERLAP_EPS)
              & (np.abs(centre_y) < reach[part, 1] + voxel_size / 2 - OVERLAP_EPS)
              & (np.abs(c * centre_x + s * centre_y) < half_l[part] + square - OVERLAP_EPS)
              & (np.abs(-s * centre_x + c * centre_y) < half_w[part] + square - OVERLAP_EPS))
    part, ix, iy = part[inside], ix[inside], iy[inside]
    column, layer = expand_groups(span[part, 2])
    xyz = np.stack([ix[column], iy[column], lo[part[column], 2] + layer], axis=1)
    return part[column], xyz


def voxelize_frame(parts, layout, lidar2global):
    """Rasterise the ground and the parts of one frame into the occupancy grid.

    Args:
        parts: Parts in the frame's lidar frame (later parts win on shared voxels).
        layout: RoadLayout of the log (terrain, ground kinds).
        lidar2global: (4, 4) pose of the frame's lidar.
    Returns:
        labels: (X, Y, Z) uint8, free = OPENSCENE.free_index.
        flow: (X, Y, Z, 2) float32 [vx, vy] m/s of the occupying part, 0 elsewhere.
        owner: (X, Y, Z) int32 object index of the occupying part, -1 elsewhere.
        kinds: (X, Y, Z) int8 background kind (layout.BACKGROUND_KINDS) of background voxels,
            layout.NO_KIND elsewhere.
    """
    grid_shape = OPENSCENE.grid_shape
    labels = np.full(grid_shape, OPENSCENE.free_index, dtype=np.uint8)
    kinds = np.full(grid_shape, NO_KIND, dtype=np.int8)
    top, ground = ground_columns(layout, np.asarray(lidar2global, dtype=np.float64))
    layers = np.arange(grid_shape[2])
    solid = (layers >= GROUND_LAYER) & (layers <= top[..., None])
    labels[solid] = OPENSCENE.class_names.index('background')
    kinds[solid] = np.broadcast_to(ground[..., None], grid_shape)[solid]
    flow = np.zeros((*grid_shape, 2), dtype=np.float32)
    owner = np.full(grid_shape, -1, dtype=np.int32)
    part, xyz = part_voxels(parts.boxes)
    if len(part):
        flat = (xyz[:, 0] * grid_shape[1] + xyz[:, 1]) * grid_shape[2] + xyz[:, 2]
        order = np.lexsort((part, flat))
        last = np.append(flat[order][1:] != flat[order][:-1], True)
        part, xyz = part[order][last], xyz[order][last]
        index = (xyz[:, 0], xyz[:, 1], xyz[:, 2])
        labels[index] = parts.label[part]
        kinds[index] = parts.kind[part]
        flow[index] = parts.velocity[part]
        owner[index] = parts.owner[part]
    return labels, flow, owner, kinds
