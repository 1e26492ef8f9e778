"""Oriented boxes ("parts") that everything solid in the synthetic world is built from.

A part is a box turned about z only, so every pose the world needs (global, ego, lidar) keeps it
a yaw box. The same parts are voxelised into the labels, ray-cast into the camera images and
ray-cast into the lidar sweeps, so all three agree.
"""
from dataclasses import dataclass, fields

import numpy as np

# Surface materials: how a part's faces are coloured (render.py) and how bright it is to the
# lidar (lidar.py).
#   plain: the part's colour; cabin: dark glass on the sides, paint on top; facade: rows of dark
#   windows on the sides; foliage: speckled leaves; stripes: diagonal white bands (barriers,
#   construction-sign plates); paving: the ground's surface texture on top (sidewalks), curb
#   stone on the sides.
MATERIALS = ('plain', 'cabin', 'facade', 'foliage', 'stripes', 'paving')
MATERIAL = {name: i for i, name in enumerate(MATERIALS)}


@dataclass
class Parts:
    """N boxes in one frame (global, or one frame's lidar frame)."""
    boxes: np.ndarray  # (N, 7) float64: x, y, z of the box centre, l, w, h, yaw (metres, rad)
    label: np.ndarray  # (N,) uint8 occupancy class
    kind: np.ndarray  # (N,) int8 background kind (layout.BACKGROUND_KINDS) or layout.NO_KIND
    owner: np.ndarray  # (N,) int32 index of the object the part belongs to, -1 for structures
    colour: np.ndarray  # (N, 3) uint8 RGB base colour
    material: np.ndarray  # (N,) int8 index into MATERIALS
    velocity: np.ndarray  # (N, 2) float64 m/s in the same frame as the boxes

    def __len__(self):
        return len(self.boxes)

    def take(self, index):
        """The parts at `index` (an index array or a boolean mask)."""
        return Parts(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def empty_parts():
    return Parts(boxes=np.zeros((0, 7)), label=np.zeros(0, np.uint8), kind=np.zeros(0, np.int8),
                 owner=np.zeros(0, np.int32), colour=np.zeros((0, 3), np.uint8),
                 material=np.zeros(0, np.int8), velocity=np.zeros((0, 2)))


def concat_parts(parts_list):
    """One Parts holding the given ones in order (later parts win where labels overlap)."""
    parts_list = [p for p in parts_list if len(p)] or [empty_parts()]
    return Parts(**{f.name: np.concatenate([getattr(p, f.name) for p in parts_list])
                    for f in fields(Parts)})


def make_parts(boxes, label, kind, owner, colour, material, velocity=None):
    """Parts from per-part sequences, broadcasting scalars to every part."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    count = len(boxes)

    def column(value, dtype, width=None):
        shape = (count,) if width is None else (count, width)
        return np.broadcast_to(np.asarray(value, dtype=dtype), shape).copy()

    return Parts(boxes=boxes, label=column(label, np.uint8), kind=column(kind, np.int8),
                 owner=column(owner, np.int32), colour=column(colour, np.uint8, 3),
                 material=column(material, np.int8),
                 velocity=column(0.0 if velocity is None else velocity, np.float64, 2))


def transform_parts(parts, transform):
    """Parts moved by a (4, 4) rigid transform that rotates about z only (e.g. global2lidar
    of the flat synthetic world)."""
    transform = np.asarray(transform, dtype=np.float64)
    yaw = np.arctan2(transform[1, 0], transform[0, 0])
    boxes = parts.boxes.copy()
    boxes[:, :3] = parts.boxes[:, :3] @ transform[:3, :3].T + transform[:3, 3]
    boxes[:, 6] = (parts.boxes[:, 6] + yaw + np.pi) % (2 * np.pi) - np.pi
    moved = parts.take(slice(None))
    moved.boxes = boxes
    moved.velocity = parts.velocity @ transform[:2, :2].T
    return moved


def box_corners(boxes):
    """The 8 corners (N, 8, 3) of yaw boxes (N, 7)."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                     dtype=np.float64)
    local = signs[None] * boxes[:, None, 3:6] / 2
    cos, sin = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = cos * local[..., 0] - sin * local[..., 1]
    y = sin * local[..., 0] + cos * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes[:, None, :3]


def rectangles_overlap(centre_a, yaw_a, half_a, centre_b, yaw_b, half_b):
    """Whether oriented rectangles a and b overlap (separating axis test); broadcasts.

    Args: centres (..., 2) metres, yaws (...) radians, half extents (..., 2) metres.
    """
    def axes(yaw):
        c, s = np.cos(yaw), np.sin(yaw)
        return np.stack([c, s], -1), np.stack([-s, c], -1)

    ua, va = axes(yaw_a)
    ub, vb = axes(yaw_b)
    delta = centre_b - centre_a

    def dot(p, q):
        return np.abs((p * q).sum(-1))

    separated = np.zeros(np.broadcast_shapes(delta.shape[:-1], ua.shape[:-1], ub.shape[:-1]), bool)
    for axis in (ua, va, ub, vb):
        reach_a = half_a[..., 0] * dot(ua, axis) + half_a[..., 1] * dot(va, axis)
        reach_b = half_b[..., 0] * dot(ub, axis) + half_b[..., 1] * dot(vb, axis)
        separated |= dot(delta, axis) > reach_a + reach_b
    return ~separated


def expand_groups(counts):
    """For consecutive groups of the given sizes (G,): the group (M,) of every element and its
    rank (M,) inside its group, M = counts.sum()."""
    counts = np.asarray(counts, dtype=np.int64)
    group = np.repeat(np.arange(len(counts)), counts)
    rank = np.arange(len(group)) - np.repeat(np.cumsum(counts) - counts, counts)
    return group, rank
