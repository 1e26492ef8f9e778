"""Object tracks of a synthetic log: where each object is placed, how it moves and what it is
made of (shapes.py), clear of the ego vehicle, of each other and of the roadside structures.

Objects move at constant velocity in x-y (pedestrians on a crossing only while crossing) and stand
on the ground under their centre (layout.support_height): on the road, the raised sidewalk or the
terrain.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from occnet.datasets.synthetic.layout import (CROSSWALK_SPACING, CURB_OUTER, LANE_WIDTH, ZONE,
                                              stands_level, support_height, zone_at)
from occnet.datasets.synthetic.parts import rectangles_overlap
from occnet.datasets.synthetic.shapes import make_shape
from occnet.descriptions import OPENSCENE

COLLISION_MARGIN = 0.3  # metres added to every half extent when testing overlaps
SPAWN_AHEAD = 60.0  # objects are spawned within this distance along the road of the ego
MAX_ATTEMPTS_PER_KIND = 600

# Object kinds, spawned in this order: (nuPlan category, placement, mean number inside the grid
# per frame). Static kinds first, free movers last.
OBJECT_KINDS = (
    ('vehicle', 'parking', 3.0),
    ('vehicle', 'lot', 3.0),
    ('traffic_cone', 'edge', 9.0),
    ('barrier', 'roadside', 6.0),
    ('czone_sign', 'curbside', 4.0),
    ('generic_object', 'sidewalk_or_lot', 6.0),
    ('pedestrian', 'standing', 4.0),
    ('pedestrian', 'crosswalk', 1.5),
    ('vehicle', 'lane', 8.0),
    ('bicycle', 'bike_lane', 5.0),
    ('pedestrian', 'sidewalk', 8.0),
)


@dataclass
class ObjectTracks:
    """N objects; object i sits at anchor[i] at anchor_time[i] and moves with velocity[i] while
    move_window[i, 0] <= t <= move_window[i, 1]. Its P_i parts are the rows of the part_*
    arrays whose part_object is i."""
    category: list  # N nuPlan names
    class_index: np.ndarray  # (N,) occupancy class
    size: np.ndarray  # (N, 3) overall l, w, h metres
    yaw: np.ndarray  # (N,) radians, global
    anchor: np.ndarray  # (N, 2) metres, global
    anchor_time: np.ndarray  # (N,) seconds
    velocity: np.ndarray  # (N, 2) m/s, global
    move_window: np.ndarray  # (N, 2) seconds
    colour: np.ndarray  # (N, 3) uint8 RGB paint the object drew (shapes.CLASS_PAINTS)
    track_token: list  # N 16-hex strings
    part_boxes: np.ndarray  # (P, 6) cx, cy, z0, l, w, h in the object's frame (see shapes.py)
    part_object: np.ndarray  # (P,) int owning object
    part_colour: np.ndarray  # (P, 3) uint8 RGB
    part_material: np.ndarray  # (P,) int8


def track_xy(anchor, velocity, anchor_time, start, end, time):
    """Positions (..., 2) of constant-velocity tracks that move only between `start` and `end`
    seconds and pass `anchor` at `anchor_time`; all arguments broadcast."""
    return anchor + velocity * (np.clip(time, start, end) - anchor_time)[..., None]


def object_states(objects, time, layout):
    """Global object boxes at `time` seconds.

    Returns:
        centres: (N, 3) metres (box centre; each box stands on the ground under its centre).
        velocities: (N, 3) m/s.
    """
    start, end = objects.move_window[:, 0], objects.move_window[:, 1]
    moving = (time >= start) & (time <= end)
    xy = track_xy(objects.anchor, objects.velocity, objects.anchor_time, start, end, time)
    base = support_height(layout, *layout.road_coordinates(xy))
    centres = np.concatenate([xy, (base + objects.size[:, 2] / 2)[:, None]], axis=1)
    velocities = np.zeros((len(xy), 3))
    velocities[:, :2] = objects.velocity * moving[:, None]
    return centres, velocities


def to_heading_frame(vectors, yaw):
    """Global x-y vectors (N, 2) expressed in frames rotated by yaw (N,) radians."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    return np.stack([cos * vectors[:, 0] + sin * vectors[:, 1],
                     -sin * vectors[:, 0] + cos * vectors[:, 1]], axis=1)


def _place(placement, rng, s_centre, layout, sample_time):
    """Road position and motion of one candidate object of a placement kind.

    Returns (s, d, yaw, speed, move_window) or None when the placement is impossible here.
    """
    side = float(rng.choice([-1.0, 1.0]))
    with_traffic = 0.0 if side < 0 else np.pi  # heading of traffic on that side
    along_road = float(rng.choice([0.0, np.pi]))
    always = (-1e9, 1e9)
    s = s_centre
    if placement == 'lane':
        d = side * LANE_WIDTH * (rng.integers(2) + 0.5) + rng.uniform(-0.2, 0.2)
        return s, d, with_traffic, rng.uniform(3.0, 12.0), always
    if placement == 'bike_lane':
        return s, side * rng.uniform(7.55, 8.05), with_traffic, rng.uniform(3.0, 5.0), always
    if placement == 'sidewalk':
        return s, side * rng.uniform(12.3, 13.7), along_road, rng.uniform(1.0, 1.6), always
    if placement == 'crosswalk':
        nearest = layout.crosswalk_offset + CROSSWALK_SPACING * np.round(
            (s - layout.crosswalk_offset) / CROSSWALK_SPACING)
        if abs(nearest - s) > SPAWN_AHEAD:
            return None
        speed = rng.uniform(1.1, 1.5)
        start = sample_time - rng.uniform(0, 15)
        duration = 2 * (CURB_OUTER + 1.0) / speed
        return (nearest + rng.uniform(-1.5, 1.5), side * (CURB_OUTER + 1.0), -side * np.pi / 2,
                speed, (start, start + duration))
    random_yaw = rng.uniform(-np.pi, np.pi)
    if placement == 'parking':
        yaw = with_traffic + rng.uniform(-0.04, 0.04)
        return s, side * rng.uniform(9.45, 9.7), yaw, 0.0, always
    if placement == 'lot':
        if zone_at(layout, np.array([s]), np.array([side]))[0] != ZONE['lot']:
            return None
        yaw = rng.choice([0.0, 0.5, 1.0, -0.5]) * np.pi + rng.uniform(-0.1, 0.1)
        return s, side * rng.uniform(18.5, 32.0), yaw, 0.0, always  # clear of the sidewalk
    if placement == 'edge':
        d = rng.uniform(7.25, 8.3) if rng.random() < 0.6 else rng.uniform(9.0, 10.5)
        return s, side * d, random_yaw, 0.0, always
    if placement == 'roadside':
        d = rng.uniform(9.0, 10.5) if rng.random() < 0.6 else rng.uniform(13.8, 14.7)
        return s, side * d, along_road + rng.uniform(-0.1, 0.1), 0.0, always
    if placement == 'curbside':
        d = rng.uniform(9.0, 10.6) if rng.random() < 0.5 else rng.uniform(11.4, 12.2)
        return s, side * d, np.pi / 2 + rng.uniform(-0.2, 0.2), 0.0, always
    if placement == 'sidewalk_or_lot':
        return s, side * rng.uniform(11.5, 28.0), random_yaw, 0.0, always
    if placement == 'standing':
        d = rng.uniform(11.6, 14.7) if rng.random() < 0.7 else rng.uniform(15.5, 30.0)
        return s, side * d, random_yaw, 0.0, always
    raise ValueError(f'unknown placement {placement!r}; valid: see OBJECT_KINDS in {__name__}')


class _Track(NamedTuple):
    """One accepted object while spawning (see ObjectTracks for the fields)."""
    category: str
    class_index: int
    size: np.ndarray
    yaw: float
    anchor: np.ndarray
    anchor_time: float
    velocity: np.ndarray
    move_window: tuple
    parts: list  # shapes.make_shape parts, the object's paint first


class _Occupancy:
    """Footprints over time of everything placed so far, with the x-y bounding box of each
    footprint's path so that a candidate is tested only against those near it."""

    def __init__(self, times):
        self.times = times
        self.paths, self.yaws, self.halves, self.bounds = [], [], [], []

    def add(self, path, yaw, half):
        reach = np.hypot(*half)
        self.paths.append(np.broadcast_to(path, (len(self.times), 2)))
        self.yaws.append(np.broadcast_to(yaw, (len(self.times),)))
        self.halves.append(np.asarray(half, dtype=np.float64))
        self.bounds.append(np.concatenate([path.reshape(-1, 2).min(0) - reach,
                                           path.reshape(-1, 2).max(0) + reach]))

    def collides(self, path, yaw, half):
        if not self.paths:
            return False
        reach = np.hypot(*half)
        lo, hi = path.min(0) - reach, path.max(0) + reach
        bounds = np.asarray(self.bounds)
        near = np.flatnonzero(np.all(bounds[:, :2] <= hi, axis=1)
                              & np.all(bounds[:, 2:] >= lo, axis=1))
        if len(near) == 0:
            return False
        return bool(rectangles_overlap(
            path[None], yaw, half, np.stack([self.paths[i] for i in near]),
            np.stack([self.yaws[i] for i in near]),
            np.stack([self.halves[i] for i in near])[:, None]).any())


def spawn_objects(rng, frame_times, lidar_xy, ego_yaw, ego_footprint, structures, layout,
                  grid_half):
    """Sample non-overlapping object tracks, kind by kind, until each kind's mean count inside
    the grid per frame reaches its target and each kind has at least one object (within
    MAX_ATTEMPTS_PER_KIND tries; a crossing needs a crosswalk near the ego path).

    Args:
        rng: numpy Generator.
        frame_times: (T,) seconds of the key frames.
        lidar_xy: (T, 2) global x-y centres of the grid (the OpenScene lidar, the Occ3D
            ego); ego_yaw: (T,) radians.
        ego_footprint: dict time (S,), centre (S, 2), yaw (S,), half (2,) of the ego vehicle on
            the fine time grid at which overlaps are tested.
        structures: (M, 5) static footprints cx, cy, yaw, half length, half width.
        layout: the road layout.
        grid_half: metres; an object counts as in the grid within this distance in x and y.
    Returns:
        ObjectTracks.
    """
    times = ego_footprint['time']
    occupied = _Occupancy(times)
    occupied.add(ego_footprint['centre'], ego_footprint['yaw'],
                 ego_footprint['half'] + COLLISION_MARGIN)
    for cx, cy, yaw, half_l, half_w in structures:
        occupied.add(np.array([cx, cy]), yaw, np.array([half_l, half_w]) + COLLISION_MARGIN)
    records = []
    ego_s = lidar_xy[:, 0] - layout.origin[0]
    for category, placement, per_frame in OBJECT_KINDS:
        class_index = OPENSCENE.class_names.index(category)
        frames_in_grid, accepted = 0, 0
        for _ in range(MAX_ATTEMPTS_PER_KIND):
            if frames_in_grid >= per_frame * len(frame_times) and accepted > 0:
                break
            sample_time = rng.uniform(0, frame_times[-1]) if len(frame_times) > 1 else 0.0
            s_here = np.interp(sample_time, frame_times, ego_s)
            placed = _place(placement, rng, s_here + rng.uniform(-SPAWN_AHEAD, SPAWN_AHEAD),
                            layout, sample_time)
            if placed is None:
                continue
            s, d, yaw, speed, window = placed
            size, parts = make_shape(rng, category, placement)
            velocity = speed * np.array([np.cos(yaw), np.sin(yaw)])
            anchor = layout.origin + np.array([s, d])
            anchor_time = window[0] if window[0] > -1e8 else sample_time
            path = track_xy(anchor, velocity, anchor_time, *window, times)
            half = size[:2] / 2 + COLLISION_MARGIN
            if occupied.collides(path, yaw, half):
                continue
            if speed == 0 and not stands_level(layout, *anchor, yaw, *size[:2]):
                continue  # a static object never straddles a curb
            offset = track_xy(anchor, velocity, anchor_time, *window, frame_times) - lidar_xy
            local = to_heading_frame(offset, ego_yaw)
            in_grid = int(np.all(np.abs(local) < grid_half, axis=1).sum())
            if in_grid == 0:
                continue
            occupied.add(path, yaw, half)
            frames_in_grid += in_grid
            accepted += 1
            records.append(_Track(category, class_index, size,
                                  (yaw + np.pi) % (2 * np.pi) - np.pi, anchor, anchor_time,
                                  velocity, window, parts))
    return _tracks(rng, records)


def _tracks(rng, records):
    """ObjectTracks of the accepted _Track records (track tokens drawn last, in order)."""
    parts = [(i, part) for i, record in enumerate(records) for part in record.parts]

    def column(name, width=None):
        values = np.array([getattr(r, name) for r in records], dtype=np.float64)
        return values if width is None else values.reshape(-1, width)

    return ObjectTracks(
        category=[r.category for r in records],
        class_index=np.array([r.class_index for r in records], dtype=np.int64),
        size=column('size', 3), yaw=column('yaw'), anchor=column('anchor', 2),
        anchor_time=column('anchor_time'), velocity=column('velocity', 2),
        move_window=column('move_window', 2),
        colour=np.array([r.parts[0][6] for r in records], dtype=np.uint8).reshape(-1, 3),
        track_token=[rng.bytes(8).hex() for _ in records],
        part_boxes=np.array([p[:6] for _, p in parts], dtype=np.float64).reshape(-1, 6),
        part_object=np.array([i for i, _ in parts], dtype=np.int64),
        part_colour=np.array([p[6] for _, p in parts], dtype=np.uint8).reshape(-1, 3),
        part_material=np.array([p[7] for _, p in parts], dtype=np.int8))
