"""Dense per-frame occupancy, flow and background-kind labels of the synthetic scenes, in the
frame's lidar grid.

A voxel is occupied when a solid overlaps it with positive volume: the ground (from the bottom of
GROUND_LAYER up to the terrain surface) or a part (parts.py). Later parts win where several
overlap one voxel, so objects, listed after the structures, keep their class.
"""
import numpy as np

from occnet.constants import BACKGROUND_INDEX, FREE_INDEX, GRID_SHAPE, POINT_CLOUD_RANGE, VOXEL_SIZE
from occnet.datasets.synthetic.layout import (NO_KIND, SIDEWALK_OUTER, green_between,
                                              ground_kind, terrain_height)
from occnet.datasets.synthetic.rig import GROUND_Z

# Voxel layer whose top face is the road surface (z index 3 for OpenScene's grid).
GROUND_LAYER = int(round((GROUND_Z - POINT_CLOUD_RANGE[2]) / VOXEL_SIZE)) - 1
OVERLAP_EPS = 1e-6  # metres; solids that only touch a voxel's face do not occupy it
TERRAIN_SAMPLES = 4  # per column and axis, edges included, to find its highest terrain
TERRAIN_MARGIN = 0.005  # metres added to that sampled maximum (the terrain is smooth)


def ground_columns(layout, lidar2global):
    """Top ground layer and background kind of every column of the grid.

    Args:
        layout: RoadLayout of the log.
        lidar2global: (4, 4) pose of the frame's lidar (a rotation about z and a translation).
    Returns:
        top: (X, Y) int index of the highest ground voxel (>= GROUND_LAYER).
        kind: (X, Y) int8 background kind of the ground (layout.BACKGROUND_KINDS).
    """
    size_x, size_y, _ = GRID_SHAPE
    rotation, translation = lidar2global[:2, :2], lidar2global[:2, 3]
    local = np.stack(np.meshgrid(
        POINT_CLOUD_RANGE[0] + (np.arange(size_x) + 0.5) * VOXEL_SIZE,
        POINT_CLOUD_RANGE[1] + (np.arange(size_y) + 0.5) * VOXEL_SIZE, indexing='ij'),
        axis=-1).reshape(-1, 2)
    s, d = layout.road_coordinates(local @ rotation.T + translation)
    kind = ground_kind(layout, s, d).astype(np.int8).reshape(size_x, size_y)
    # the highest terrain inside each column that may hold some: sampled on a grid that
    # includes the column's edges, plus a margin for the curvature between samples
    reach = VOXEL_SIZE / np.sqrt(2)
    maybe = np.flatnonzero((np.abs(d) > SIDEWALK_OUTER - reach)
                           & green_between(layout, s - reach, s + reach, d))
    offsets = np.linspace(-VOXEL_SIZE / 2, VOXEL_SIZE / 2, TERRAIN_SAMPLES)
    grid = np.stack(np.meshgrid(offsets, offsets, indexing='ij'), axis=-1).reshape(-1, 2)
    samples = (local[maybe, None] + grid).reshape(-1, 2) @ rotation.T + translation
    peak = np.zeros(size_x * size_y)
    if len(maybe):
        peak[maybe] = terrain_height(layout, *layout.road_coordinates(samples)).reshape(
            len(maybe), len(grid)).max(axis=1)
    peak = np.where(peak > 0, peak + TERRAIN_MARGIN, 0.0)
    surface_z = peak - lidar2global[2, 3]  # terrain surface in the lidar frame
    top = np.ceil((surface_z - POINT_CLOUD_RANGE[2]) / VOXEL_SIZE - 1e-9).astype(np.int64) - 1
    return np.clip(top, GROUND_LAYER, GRID_SHAPE[2] - 1).reshape(size_x, size_y), kind


def _expand(counts):
    """For groups of the given sizes: the group of every element and its rank in the group."""
    group = np.repeat(np.arange(len(counts)), counts)
    rank = np.arange(len(group)) - np.repeat(np.cumsum(counts) - counts, counts)
    return group, rank


def part_voxels(boxes):
    """Voxels overlapped with positive volume by yaw boxes.

    Args:
        boxes: (N, 7) x, y, z, l, w, h, yaw in the lidar frame.
    Returns:
        part: (M,) int64 box of each overlap; xyz: (M, 3) int64 voxel coordinates inside the grid.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    lower = np.asarray(POINT_CLOUD_RANGE[:3])
    cos, sin = np.abs(np.cos(boxes[:, 6])), np.abs(np.sin(boxes[:, 6]))
    half_l, half_w = boxes[:, 3] / 2, boxes[:, 4] / 2
    reach = np.stack([cos * half_l + sin * half_w, sin * half_l + cos * half_w,
                      boxes[:, 5] / 2], axis=1)
    lo = np.floor((boxes[:, :3] - reach + OVERLAP_EPS - lower) / VOXEL_SIZE).astype(np.int64)
    hi = np.ceil((boxes[:, :3] + reach - OVERLAP_EPS - lower) / VOXEL_SIZE).astype(np.int64)
    lo = np.clip(lo, 0, np.asarray(GRID_SHAPE))
    hi = np.clip(hi, 0, np.asarray(GRID_SHAPE))  # exclusive
    span = np.clip(hi - lo, 0, None)
    # x-y columns of each box's bounding rectangle, kept where the rectangles overlap (SAT)
    part, rank = _expand(span[:, 0] * span[:, 1])
    ix = lo[part, 0] + rank // span[part, 1]
    iy = lo[part, 1] + rank % span[part, 1]
    centre_x = lower[0] + (ix + 0.5) * VOXEL_SIZE - boxes[part, 0]
    centre_y = lower[1] + (iy + 0.5) * VOXEL_SIZE - boxes[part, 1]
    c, s = np.cos(boxes[part, 6]), np.sin(boxes[part, 6])
    square = VOXEL_SIZE / 2 * (np.abs(c) + np.abs(s))
    inside = ((np.abs(centre_x) < reach[part, 0] + VOXEL_SIZE / 2 - OVERLAP_EPS)
              & (np.abs(centre_y) < reach[part, 1] + VOXEL_SIZE / 2 - OVERLAP_EPS)
              & (np.abs(c * centre_x + s * centre_y) < half_l[part] + square - OVERLAP_EPS)
              & (np.abs(-s * centre_x + c * centre_y) < half_w[part] + square - OVERLAP_EPS))
    part, ix, iy = part[inside], ix[inside], iy[inside]
    column, layer = _expand(span[part, 2])
    xyz = np.stack([ix[column], iy[column], lo[part[column], 2] + layer], axis=1)
    return part[column], xyz


def voxelize_frame(parts, layout, lidar2global):
    """Rasterise the ground and the parts of one frame into the occupancy grid.

    Args:
        parts: Parts in the frame's lidar frame (later parts win on shared voxels).
        layout: RoadLayout of the log (terrain, ground kinds).
        lidar2global: (4, 4) pose of the frame's lidar.
    Returns:
        labels: (X, Y, Z) uint8, free = FREE_INDEX.
        flow: (X, Y, Z, 2) float32 [vx, vy] m/s of the occupying part, 0 elsewhere.
        owner: (X, Y, Z) int32 object index of the occupying part, -1 elsewhere.
        kinds: (X, Y, Z) int8 background kind (layout.BACKGROUND_KINDS) of background voxels,
            layout.NO_KIND elsewhere.
    """
    labels = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
    kinds = np.full(GRID_SHAPE, NO_KIND, dtype=np.int8)
    top, ground = ground_columns(layout, np.asarray(lidar2global, dtype=np.float64))
    layers = np.arange(GRID_SHAPE[2])
    solid = (layers >= GROUND_LAYER) & (layers <= top[..., None])
    labels[solid] = BACKGROUND_INDEX
    kinds[solid] = np.broadcast_to(ground[..., None], GRID_SHAPE)[solid]
    flow = np.zeros((*GRID_SHAPE, 2), dtype=np.float32)
    owner = np.full(GRID_SHAPE, -1, dtype=np.int32)
    part, xyz = part_voxels(parts.boxes)
    if len(part):
        flat = (xyz[:, 0] * GRID_SHAPE[1] + xyz[:, 1]) * GRID_SHAPE[2] + xyz[:, 2]
        order = np.lexsort((part, flat))
        last = np.append(flat[order][1:] != flat[order][:-1], True)
        part, xyz = part[order][last], xyz[order][last]
        index = (xyz[:, 0], xyz[:, 1], xyz[:, 2])
        labels[index] = parts.label[part]
        kinds[index] = parts.kind[part]
        flow[index] = parts.velocity[part]
        owner[index] = parts.owner[part]
    return labels, flow, owner, kinds
