"""Synthetic street scenes: road layout, ego trajectory and object tracks.

Everything is deterministic from a numpy Generator. The global frame is flat (ground at z = 0,
z up) and the road runs along its x axis. Road coordinates: s = x - road_origin[0] along the road,
d = y - road_origin[1] to the left of the centre line. Traffic keeps right: lanes with d < 0 drive
towards +x. Objects move at constant velocity (pedestrians on a crossing only while crossing).
"""
import colorsys
from dataclasses import dataclass

import numpy as np

from occnet.constants import CLASS_NAMES, CLASS_PALETTE, POINT_CLOUD_RANGE
from occnet.datasets.synthetic.rig import LIDAR2EGO_TRANSLATION

FRAME_INTERVAL_S = 0.5  # key frames at 2 Hz

# Road cross-section: outer edges of each band as |d| in metres (symmetric about the centre line).
LANE_WIDTH = 3.5
CARRIAGEWAY_HALF = 2 * LANE_WIDTH  # two lanes per direction
BIKE_LANE_OUTER = 8.6
PARKING_OUTER = 10.8
CURB_OUTER = 11.0
SIDEWALK_OUTER = 15.0
CROSSWALK_SPACING = 150.0  # metres between zebra crossings along the road
CROSSWALK_WIDTH = 4.0
DASH_PERIOD, DASH_LENGTH = 9.0, 3.0  # dashed lane dividers
LINE_WIDTH = 0.15

# Ground surface kinds returned by `surface_kind`.
SURFACES = ('asphalt', 'lane_line', 'centre_line', 'bike_lane', 'parking', 'curb', 'sidewalk',
            'offroad', 'crosswalk')
SURFACE = {name: i for i, name in enumerate(SURFACES)}

# nuPlan-like map locations with their UTM-style origins (metres).
CITY_ORIGINS = {
    'las_vegas': (664000.0, 3997000.0),
    'pittsburgh': (587000.0, 4475000.0),
    'boston': (331000.0, 4690000.0),
    'singapore': (365000.0, 143000.0),
}

# Ego vehicle footprint relative to the ego origin (rear axle on the ground).
EGO_CENTRE_X, EGO_HALF_LENGTH, EGO_HALF_WIDTH = 1.45, 2.5, 1.05
COLLISION_MARGIN = 0.3  # metres added to every half extent when testing overlaps
COLLISION_DT = 0.25  # seconds between the instants at which overlaps are tested
DRIVING_COMMAND_HORIZON_S = 3.0
DRIVING_COMMAND_LATERAL_M = 1.5
_FINE_DT = 0.05  # seconds; ego motion is integrated on this grid
_GRID_HALF = min(-POINT_CLOUD_RANGE[0], -POINT_CLOUD_RANGE[1], POINT_CLOUD_RANGE[3],
                 POINT_CLOUD_RANGE[4])
_SPAWN_AHEAD = 60.0  # objects are spawned within this distance along the road of the ego

# Object kinds, spawned in this order: (nuPlan category, min (l, w, h), max (l, w, h) metres,
# placement, mean number inside the grid per frame). Static kinds first, free movers last.
_VEHICLE_SIZE = ((4.0, 1.8, 1.5), (5.0, 2.0, 1.8))
_PEDESTRIAN_SIZE = ((0.5, 0.5, 1.65), (0.7, 0.7, 1.85))
OBJECT_KINDS = (
    ('vehicle', *_VEHICLE_SIZE, 'parking', 3.0),
    ('vehicle', *_VEHICLE_SIZE, 'lot', 3.0),
    ('traffic_cone', (0.35, 0.35, 0.6), (0.45, 0.45, 0.8), 'edge', 9.0),
    ('barrier', (1.8, 0.35, 0.9), (2.2, 0.45, 1.1), 'roadside', 6.0),
    ('czone_sign', (0.5, 0.25, 1.4), (0.7, 0.35, 1.6), 'curbside', 4.0),
    ('generic_object', (0.6, 0.6, 0.6), (1.0, 1.0, 1.0), 'sidewalk_or_lot', 6.0),
    ('pedestrian', *_PEDESTRIAN_SIZE, 'standing', 4.0),
    ('pedestrian', *_PEDESTRIAN_SIZE, 'crosswalk', 1.5),
    ('vehicle', *_VEHICLE_SIZE, 'lane', 8.0),
    ('bicycle', (1.6, 0.5, 1.3), (1.8, 0.7, 1.5), 'bike_lane', 5.0),
    ('pedestrian', *_PEDESTRIAN_SIZE, 'sidewalk', 8.0),
)
_MAX_ATTEMPTS_PER_KIND = 600


@dataclass
class EgoTrajectory:
    """Ego states at the key frames (T frames). Dynamics are in the ego frame."""
    translation: np.ndarray  # (T, 3) metres, global
    yaw: np.ndarray  # (T,) radians, global
    velocity: np.ndarray  # (T, 3) m/s
    acceleration: np.ndarray  # (T, 3) m/s^2
    angular_rate: np.ndarray  # (T, 3) rad/s
    driving_command: np.ndarray  # (T,) int: 0 left, 1 forward, 2 right


@dataclass
class ObjectTracks:
    """N objects; object i sits at anchor[i] at anchor_time[i] and moves with velocity[i] while
    move_window[i, 0] <= t <= move_window[i, 1]."""
    category: list  # N nuPlan names
    class_index: np.ndarray  # (N,) occupancy class
    size: np.ndarray  # (N, 3) l, w, h metres
    yaw: np.ndarray  # (N,) radians, global
    anchor: np.ndarray  # (N, 2) metres, global
    anchor_time: np.ndarray  # (N,) seconds
    velocity: np.ndarray  # (N, 2) m/s, global
    move_window: np.ndarray  # (N, 2) seconds
    colour: np.ndarray  # (N, 3) uint8 RGB
    track_token: list  # N 16-hex strings


@dataclass
class World:
    """One log's scene: where the road is, how the ego drives and what is around."""
    map_location: str
    road_origin: np.ndarray  # (2,) global metres of (s, d) = (0, 0)
    crosswalk_offset: float  # s of the first crosswalk centre
    sun_direction: np.ndarray  # (3,) unit vector towards the sun, global
    roadblock_base: int
    traffic_light_ids: list
    ego: EgoTrajectory
    objects: ObjectTracks


def surface_kind(s, d, crosswalk_offset):
    """Ground surface index (see SURFACES) at road coordinates s, d (arrays, metres)."""
    ad = np.abs(d)
    kind = np.full(np.shape(s), SURFACE['offroad'], dtype=np.int8)
    kind[ad < SIDEWALK_OUTER] = SURFACE['sidewalk']
    kind[ad < CURB_OUTER] = SURFACE['curb']
    kind[ad < PARKING_OUTER] = SURFACE['parking']
    kind[ad < BIKE_LANE_OUTER] = SURFACE['bike_lane']
    kind[ad < CARRIAGEWAY_HALF] = SURFACE['asphalt']

    def on_line(centre):
        return np.abs(ad - centre) < LINE_WIDTH / 2

    kind[on_line(BIKE_LANE_OUTER - LINE_WIDTH) | on_line(CARRIAGEWAY_HALF - LINE_WIDTH)] = \
        SURFACE['lane_line']
    dashes = np.mod(s, DASH_PERIOD) < DASH_LENGTH
    kind[on_line(LANE_WIDTH) & dashes] = SURFACE['lane_line']
    kind[(ad > 0.06) & (ad < 0.06 + LINE_WIDTH)] = SURFACE['centre_line']
    along = np.mod(s - crosswalk_offset + CROSSWALK_WIDTH / 2, CROSSWALK_SPACING)
    stripes = np.mod(d + CARRIAGEWAY_HALF, 1.0) < 0.55
    kind[(along < CROSSWALK_WIDTH) & (ad < CARRIAGEWAY_HALF - LINE_WIDTH) & stripes] = \
        SURFACE['crosswalk']
    return kind


def object_states(objects, time):
    """Global object boxes at `time` seconds.

    Returns:
        centres: (N, 3) metres (box centre; boxes stand on the ground z = 0).
        velocities: (N, 3) m/s.
    """
    start, end = objects.move_window[:, 0], objects.move_window[:, 1]
    moving = (time >= start) & (time <= end)
    xy = _track_xy(objects.anchor, objects.velocity, objects.anchor_time, start, end, time)
    centres = np.concatenate([xy, objects.size[:, 2:] / 2], axis=1)
    velocities = np.zeros((len(xy), 3))
    velocities[:, :2] = objects.velocity * moving[:, None]
    return centres, velocities


def _track_xy(anchor, velocity, anchor_time, start, end, time):
    """Positions (..., 2) of constant-velocity tracks that move only between `start` and `end`
    seconds and pass `anchor` at `anchor_time`; all arguments broadcast."""
    return anchor + velocity * (np.clip(time, start, end) - anchor_time)[..., None]


def _to_heading_frame(vectors, yaw):
    """Global x-y vectors (N, 2) expressed in frames rotated by yaw (N,) radians."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    return np.stack([cos * vectors[:, 0] + sin * vectors[:, 1],
                     -sin * vectors[:, 0] + cos * vectors[:, 1]], axis=1)


def frame_time(frame_idx):
    """Seconds since the start of the log of key frame `frame_idx`."""
    return frame_idx * FRAME_INTERVAL_S


def roadblock_ids(world, frame_indices):
    """Ids (str) of the 100 m road blocks the ego drives through over the given frames."""
    s = world.ego.translation[list(frame_indices), 0] - world.road_origin[0]
    blocks = np.arange(np.floor(s.min() / 100.0), np.floor(s.max() / 100.0) + 1).astype(int)
    return [str(world.roadblock_base + b) for b in blocks]


def traffic_lights(world, time):
    """[(lane connector id, is_red)] at `time` seconds; each light cycles every 40 s."""
    return [(light_id, bool(((time + 13.0 * i) % 40.0) < 18.0))
            for i, light_id in enumerate(world.traffic_light_ids)]


def make_world(rng, num_frames):
    """Build one log's scene for `num_frames` key frames from the Generator `rng`."""
    map_location = str(rng.choice(sorted(CITY_ORIGINS)))
    road_origin = np.asarray(CITY_ORIGINS[map_location]) + np.round(rng.uniform(0, 3000, 2))
    direction = float(rng.choice([-1.0, 1.0]))
    crosswalk_offset = float(rng.uniform(0, CROSSWALK_SPACING))
    sun_azimuth, sun_elevation = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(50, 70))
    sun_direction = np.array([np.cos(sun_azimuth) * np.cos(sun_elevation),
                              np.sin(sun_azimuth) * np.cos(sun_elevation), np.sin(sun_elevation)])
    ego, ego_fine = _ego_motion(rng, num_frames, direction, road_origin)
    objects = _spawn_objects(rng, num_frames, ego, ego_fine, road_origin, crosswalk_offset)
    return World(
        map_location=map_location, road_origin=road_origin, crosswalk_offset=crosswalk_offset,
        sun_direction=sun_direction, roadblock_base=int(rng.integers(10000, 90000)),
        traffic_light_ids=[int(v) for v in rng.integers(40000, 60000, rng.integers(0, 4))],
        ego=ego, objects=objects)


def _ego_motion(rng, num_frames, direction, road_origin):
    """Ego key-frame states and the fine (t, xy, yaw) samples used for collision tests."""
    steps = int(round(FRAME_INTERVAL_S / _FINE_DT))
    future = int(round(DRIVING_COMMAND_HORIZON_S / _FINE_DT))
    n = (num_frames - 1) * steps + 1 + future
    t = np.arange(n) * _FINE_DT
    wave = np.sin(2 * np.pi * t / rng.uniform(12, 25) + rng.uniform(0, 2 * np.pi))
    speed = np.clip(rng.uniform(5.5, 8.0) + rng.uniform(0.3, 1.8) * wave, 4.0, 10.0)
    dist = np.concatenate([[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2 * _FINE_DT)])
    lanes = -direction * LANE_WIDTH * np.array([0.5, 1.5])
    lane = int(rng.integers(2))
    lateral = np.full(n, lanes[lane])
    change_at = rng.uniform(10, 60)
    while change_at < dist[-1]:
        length = rng.uniform(25, 40)
        ramp = np.clip((dist - change_at) / length, 0, 1)
        lateral += (lanes[1 - lane] - lanes[lane]) * (0.5 - 0.5 * np.cos(np.pi * ramp))
        lane = 1 - lane
        change_at += length + rng.uniform(40, 100)
    weave = np.sin(2 * np.pi * dist / rng.uniform(50, 90) + rng.uniform(0, 2 * np.pi))
    lateral += rng.uniform(0.1, 0.3) * weave
    x = road_origin[0] + rng.uniform(0, 300) + direction * dist
    y = road_origin[1] + lateral
    vel = np.stack([np.gradient(x, _FINE_DT), np.gradient(y, _FINE_DT)], axis=1)
    acc = np.gradient(vel, _FINE_DT, axis=0)
    yaw = np.unwrap(np.arctan2(vel[:, 1], vel[:, 0]))
    yaw_rate = np.gradient(yaw, _FINE_DT)
    xy = np.stack([x, y], axis=1)
    ahead = np.minimum(np.arange(n) + future, n - 1)
    lateral_ahead = _to_heading_frame(xy[ahead] - xy, yaw)[:, 1]
    command = np.where(lateral_ahead > DRIVING_COMMAND_LATERAL_M, 0,
                       np.where(lateral_ahead < -DRIVING_COMMAND_LATERAL_M, 2, 1))
    keys = np.arange(num_frames) * steps
    zeros = np.zeros((num_frames, 1))
    ego = EgoTrajectory(
        translation=np.concatenate([xy[keys], zeros], axis=1),
        yaw=(yaw[keys] + np.pi) % (2 * np.pi) - np.pi,
        velocity=np.concatenate([_to_heading_frame(vel, yaw)[keys], zeros], axis=1),
        acceleration=np.concatenate([_to_heading_frame(acc, yaw)[keys], zeros], axis=1),
        angular_rate=np.concatenate([zeros, zeros, yaw_rate[keys, None]], axis=1),
        driving_command=command[keys])
    stride = int(round(COLLISION_DT / _FINE_DT))
    fine = {'time': t[:keys[-1] + 1:stride], 'xy': xy[:keys[-1] + 1:stride],
            'yaw': yaw[:keys[-1] + 1:stride]}
    return ego, fine


def _place(placement, rng, s_centre, crosswalk_offset, sample_time):
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
        return s, side * rng.uniform(11.6, 14.4), along_road, rng.uniform(1.0, 1.6), always
    if placement == 'crosswalk':
        nearest = crosswalk_offset + CROSSWALK_SPACING * np.round(
            (s - crosswalk_offset) / CROSSWALK_SPACING)
        if abs(nearest - s) > _SPAWN_AHEAD:
            return None
        speed = rng.uniform(1.1, 1.5)
        start = sample_time - rng.uniform(0, 15)
        duration = 2 * (CURB_OUTER + 1.0) / speed
        return (nearest + rng.uniform(-1.5, 1.5), side * (CURB_OUTER + 1.0), -side * np.pi / 2,
                speed, (start, start + duration))
    random_yaw = rng.uniform(-np.pi, np.pi)
    if placement == 'parking':
        yaw = with_traffic + rng.uniform(-0.04, 0.04)
        return s, side * rng.uniform(9.55, 9.85), yaw, 0.0, always
    if placement == 'lot':
        yaw = rng.choice([0.0, 0.5, 1.0, -0.5]) * np.pi + rng.uniform(-0.1, 0.1)
        return s, side * rng.uniform(17.0, 32.0), yaw, 0.0, always
    if placement == 'edge':
        d = rng.uniform(7.25, 8.3) if rng.random() < 0.6 else rng.uniform(9.0, 10.5)
        return s, side * d, random_yaw, 0.0, always
    if placement == 'roadside':
        d = rng.uniform(9.0, 10.5) if rng.random() < 0.6 else rng.uniform(14.4, 14.7)
        return s, side * d, along_road + rng.uniform(-0.1, 0.1), 0.0, always
    if placement == 'curbside':
        d = rng.uniform(9.0, 10.6) if rng.random() < 0.5 else rng.uniform(11.3, 12.0)
        return s, side * d, np.pi / 2 + rng.uniform(-0.2, 0.2), 0.0, always
    if placement == 'sidewalk_or_lot':
        return s, side * rng.uniform(11.5, 28.0), random_yaw, 0.0, always
    if placement == 'standing':
        d = rng.uniform(11.3, 14.7) if rng.random() < 0.7 else rng.uniform(15.5, 30.0)
        return s, side * d, random_yaw, 0.0, always
    raise ValueError(f'unknown placement {placement!r}; valid: see OBJECT_KINDS in {__name__}')


def _rectangles_overlap(centre_a, yaw_a, half_a, centre_b, yaw_b, half_b):
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


def _object_colour(rng, class_index):
    """Class colour from CLASS_PALETTE with a small per-object jitter (vehicles vary more)."""
    hue, sat, val = colorsys.rgb_to_hsv(*(np.asarray(CLASS_PALETTE[class_index]) / 255.0))
    if CLASS_NAMES[class_index] == 'vehicle':
        hue += rng.uniform(-0.025, 0.025)
        sat *= rng.uniform(0.7, 1.0)
        val *= rng.uniform(0.55, 1.0)
    else:
        hue += rng.uniform(-0.01, 0.01)
        val *= rng.uniform(0.85, 1.0)
    rgb = colorsys.hsv_to_rgb(hue % 1.0, min(sat, 1.0), min(val, 1.0))
    return np.round(np.asarray(rgb) * 255).astype(np.uint8)


def _spawn_objects(rng, num_frames, ego, ego_fine, road_origin, crosswalk_offset):
    """Sample non-overlapping object tracks, kind by kind, until each kind's mean count inside
    the grid per frame reaches its target and each kind has at least one object (within
    _MAX_ATTEMPTS_PER_KIND tries; a crossing needs a crosswalk near the ego path)."""
    times = ego_fine['time']
    frame_times = frame_time(np.arange(num_frames))
    lidar_xy = ego.translation[:, :2] + LIDAR2EGO_TRANSLATION[0] * np.stack(
        [np.cos(ego.yaw), np.sin(ego.yaw)], axis=1)
    ego_centre = ego_fine['xy'] + EGO_CENTRE_X * np.stack(
        [np.cos(ego_fine['yaw']), np.sin(ego_fine['yaw'])], axis=1)
    # Footprints of everything accepted so far: centres (M, S, 2), yaws (M, S), halves (M, 2).
    centres, yaws = [ego_centre], [ego_fine['yaw']]
    halves = [np.array([EGO_HALF_LENGTH, EGO_HALF_WIDTH]) + COLLISION_MARGIN]
    records = []
    for category, size_min, size_max, placement, per_frame in OBJECT_KINDS:
        class_index = CLASS_NAMES.index(category)
        frames_in_grid, accepted = 0, 0
        for _ in range(_MAX_ATTEMPTS_PER_KIND):
            if frames_in_grid >= per_frame * num_frames and accepted > 0:
                break
            sample_time = rng.uniform(0, frame_times[-1]) if num_frames > 1 else 0.0
            ego_s = np.interp(sample_time, frame_times, ego.translation[:, 0]) - road_origin[0]
            placed = _place(placement, rng, ego_s + rng.uniform(-_SPAWN_AHEAD, _SPAWN_AHEAD),
                            crosswalk_offset, sample_time)
            if placed is None:
                continue
            s, d, yaw, speed, window = placed
            size = rng.uniform(size_min, size_max)
            velocity = speed * np.array([np.cos(yaw), np.sin(yaw)])
            anchor = road_origin + np.array([s, d])
            anchor_time = window[0] if window[0] > -1e8 else sample_time
            path = _track_xy(anchor, velocity, anchor_time, *window, times)
            half = size[:2] / 2 + COLLISION_MARGIN
            overlap = _rectangles_overlap(path[None], yaw, half, np.stack(centres),
                                          np.stack(yaws), np.stack(halves)[:, None])
            if overlap.any():
                continue
            offset = _track_xy(anchor, velocity, anchor_time, *window, frame_times) - lidar_xy
            local = _to_heading_frame(offset, ego.yaw)
            in_grid = int(np.all(np.abs(local) < _GRID_HALF, axis=1).sum())
            if in_grid == 0:
                continue
            centres.append(path)
            yaws.append(np.full(len(times), yaw))
            halves.append(half)
            frames_in_grid += in_grid
            accepted += 1
            records.append((category, class_index, size, (yaw + np.pi) % (2 * np.pi) - np.pi,
                            anchor, anchor_time, velocity, window))
    return ObjectTracks(
        category=[r[0] for r in records],
        class_index=np.array([r[1] for r in records], dtype=np.int64),
        size=np.array([r[2] for r in records]).reshape(-1, 3),
        yaw=np.array([r[3] for r in records]),
        anchor=np.array([r[4] for r in records]).reshape(-1, 2),
        anchor_time=np.array([r[5] for r in records]),
        velocity=np.array([r[6] for r in records]).reshape(-1, 2),
        move_window=np.array([r[7] for r in records]).reshape(-1, 2),
        colour=np.array([_object_colour(rng, r[1]) for r in records]).reshape(-1, 3),
        track_token=[rng.bytes(8).hex() for _ in records])
