"""Dense per-frame occupancy, flow and background-kind labels of the synthetic scenes, in a
dataset's grid (its description: range, voxel size, shape) placed in the frame by `grid2global`
(the lidar frame for OpenScene, the ego frame for Occ3D-nuScenes).

A voxel is occupied when a solid overlaps it with positive volume: the ground (from the bottom
of the layer holding the ground just under the road plane up to the ground surface) or a part
(parts.py). Later parts win where several overlap one voxel, so objects, listed after the
structures, keep their class. Nothing below the ground's bottom layer is solid (the underground
is not labelled).
"""
import numpy as np

from occnet.datasets.synthetic.layout import (NO_KIND, ground_kind, terrain_height,
                                              terrain_regions)
from occnet.datasets.synthetic.parts import expand_groups, rectangles_overlap
from occnet.datasets.synthetic.rig import GROUND_Z
from occnet.descriptions import OPENSCENE

OVERLAP_EPS = 1e-6  # metres; solids that only touch a voxel's face do not occupy it
COLUMN_SAMPLES = 3  # per axis: terrain heights sampled over a column's footprint


def ground_layer(description, ground_z):
    """Index of the ground's bottom layer: the one the ground just under the road plane
    overlaps (the road surface is its top face, or lies inside it).

    Args:
        description: OccDescription whose grid is meant.
        ground_z: height of the road plane in the grid frame, metres (OpenScene: -2.0 in the
            lidar frame, the top face of layer 3; Occ3D-nuScenes: 0.0 in the ego frame,
            inside layer 2 = [-0.2, 0.2]).
    """
    return surface_layer(description, ground_z)


def surface_layer(description, height):
    """Index (int or int array) of the highest layer a solid whose top is at `height`
    (metres, grid frame) overlaps with positive volume."""
    z_min, voxel_size = description.point_cloud_range[2], description.voxel_size
    scaled = (np.asarray(height, dtype=np.float64) - z_min) / voxel_size
    return np.ceil(scaled - OVERLAP_EPS / voxel_size).astype(np.int64) - 1


# OpenScene's ground layer in its lidar grid (layer 3, whose top face is the road surface).
GROUND_LAYER = int(ground_layer(OPENSCENE, GROUND_Z))


def ground_columns(layout, grid2global, description=OPENSCENE):
    """Top ground layer and background kind of every column of the grid.

    The ground is solid from the bottom of the layer just under the road plane (ground_layer)
    up to the ground surface: the road plane, or the terrain where it rises (by up to
    TERRAIN_MAX_HEIGHT[1] metres). A column reaches up to the layer that holds the highest
    point of the surface over its footprint: terrain heights are sampled on COLUMN_SAMPLES x
    COLUMN_SAMPLES points of the footprint (only where the layer depends on it), and a column
    that overlaps a green zone's terrain (where it is above the road) counts as raised at
    least infinitesimally.

    Args:
        layout: RoadLayout of the log.
        grid2global: (4, 4) pose of the grid's frame (a rotation about z and a translation);
            the road plane lies at z = -grid2global[2, 3] in that frame.
        description: OccDescription giving the grid (range, voxel size, shape).
    Returns:
        top: (X, Y) int64 index of the highest ground layer.
        kind: (X, Y) int8 background kind of the ground (layout.BACKGROUND_KINDS), from the
            column's centre.
    """
    size_x, size_y, _ = description.grid_shape
    pc_range, voxel_size = description.point_cloud_range, description.voxel_size
    local = np.stack(np.meshgrid(
        pc_range[0] + (np.arange(size_x) + 0.5) * voxel_size,
        pc_range[1] + (np.arange(size_y) + 0.5) * voxel_size, indexing='ij'),
        axis=-1).reshape(-1, 2)
    centres = local @ grid2global[:2, :2].T + grid2global[:2, 3]
    kind = ground_kind(layout, *layout.road_coordinates(centres)).astype(np.int8)
    yaw = np.arctan2(grid2global[1, 0], grid2global[0, 0])
    column_half = np.full(2, voxel_size / 2 - OVERLAP_EPS)  # touching is not overlapping
    raised = np.zeros(len(centres), dtype=bool)
    for zone_centre, zone_half in terrain_regions(layout):
        raised |= rectangles_overlap(centres, yaw, column_half, zone_centre, 0.0, zone_half)
    ground_z = -grid2global[2, 3]
    height = np.zeros(len(centres))  # highest surface point above the road, metres
    height[raised] = 2 * OVERLAP_EPS
    peak = float(layout.terrain[:, 0].max(initial=0.0))  # no terrain rises higher
    if raised.any() and surface_layer(description, ground_z + peak) > surface_layer(
            description, ground_z + 2 * OVERLAP_EPS):  # the layer depends on the height
        steps = np.linspace(-1.0, 1.0, COLUMN_SAMPLES) * (voxel_size / 2 - OVERLAP_EPS)
        offsets = np.stack(np.meshgrid(steps, steps, indexing='ij'), -1).reshape(-1, 2)
        samples = (local[raised, None] + offsets).reshape(-1, 2)
        samples = samples @ grid2global[:2, :2].T + grid2global[:2, 3]
        sampled = terrain_height(layout, *layout.road_coordinates(samples))
        height[raised] = np.maximum(sampled.reshape(-1, len(offsets)).max(axis=1),
                                    2 * OVERLAP_EPS)
    top = np.maximum(surface_layer(description, ground_z + height),
                     ground_layer(description, ground_z))
    return top.reshape(size_x, size_y), kind.reshape(size_x, size_y)


def part_voxels(boxes, description=OPENSCENE):
    """Voxels overlapped with positive volume by yaw boxes.

    Args:
        boxes: (N, 7) x, y, z, l, w, h, yaw in the grid's frame (metres, radians).
        description: OccDescription giving the grid (range, voxel size, shape).
    Returns:
        part: (M,) int64 box of each overlap; xyz: (M, 3) int64 voxel coordinates inside the grid.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    lower = np.asarray(description.point_cloud_range[:3])
    voxel_size = description.voxel_size
    cos, sin = np.abs(np.cos(boxes[:, 6])), np.abs(np.sin(boxes[:, 6]))
    half_l, half_w = boxes[:, 3] / 2, boxes[:, 4] / 2
    reach = np.stack([cos * half_l + sin * half_w, sin * half_l + cos * half_w,
                      boxes[:, 5] / 2], axis=1)
    lo = np.floor((boxes[:, :3] - reach + OVERLAP_EPS - lower) / voxel_size).astype(np.int64)
    hi = np.ceil((boxes[:, :3] + reach - OVERLAP_EPS - lower) / voxel_size).astype(np.int64)
    lo = np.clip(lo, 0, np.asarray(description.grid_shape))
    hi = np.clip(hi, 0, np.asarray(description.grid_shape))  # exclusive
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


def voxelize_frame(parts, layout, grid2global, description=OPENSCENE):
    """Rasterise the ground and the parts of one frame into the occupancy grid.

    Args:
        parts: Parts in the grid's frame (later parts win on shared voxels).
        layout: RoadLayout of the log (terrain, ground kinds).
        grid2global: (4, 4) pose of the grid's frame: the frame's lidar for OpenScene
            (lidar2global), its ego for Occ3D-nuScenes (ego2global).
        description: OccDescription giving the grid (range, voxel size, shape).
    Returns:
        labels: (X, Y, Z) uint8 world classes (the OpenScene classes the parts carry; the
            ground is `background`), free = OPENSCENE.free_index.
        flow: (X, Y, Z, 2) float32 [vx, vy] m/s of the occupying part, 0 elsewhere.
        owner: (X, Y, Z) int32 object index of the occupying part, -1 elsewhere.
        kinds: (X, Y, Z) int8 background kind (layout.BACKGROUND_KINDS) of background voxels,
            layout.NO_KIND elsewhere.
    """
    grid_shape = description.grid_shape
    grid2global = np.asarray(grid2global, dtype=np.float64)
    labels = np.full(grid_shape, OPENSCENE.free_index, dtype=np.uint8)
    kinds = np.full(grid_shape, NO_KIND, dtype=np.int8)
    bottom = ground_layer(description, -grid2global[2, 3])
    top, ground = ground_columns(layout, grid2global, description)
    layers = np.arange(grid_shape[2])
    solid = (layers >= bottom) & (layers <= top[..., None])
    labels[solid] = OPENSCENE.class_names.index('background')
    kinds[solid] = np.broadcast_to(ground[..., None], grid_shape)[solid]
    flow = np.zeros((*grid_shape, 2), dtype=np.float32)
    owner = np.full(grid_shape, -1, dtype=np.int32)
    part, xyz = part_voxels(parts.boxes, description)
    above = xyz[:, 2] >= bottom  # e.g. a sidewalk slab reaching under the road plane
    part, xyz = part[above], xyz[above]
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
