"""Synthetic street scenes: road layout, roadside structures, ego trajectory and object tracks.

Everything is deterministic from a numpy Generator. The global frame has z up and the road runs
along its x axis (layout.py gives the road coordinates s, d); the road surface is z = 0. Traffic
keeps right: lanes with d < 0 drive towards +x.
"""
from dataclasses import dataclass

import numpy as np

from occnet.datasets.synthetic.layout import LANE_WIDTH, RoadLayout, make_layout
from occnet.datasets.synthetic.objects import ObjectTracks, spawn_objects, to_heading_frame
from occnet.datasets.synthetic.parts import Parts
from occnet.datasets.synthetic.rig import lidar2ego_matrix
from occnet.datasets.synthetic.roadside import make_roadside
from occnet.descriptions import OPENSCENE

FRAME_INTERVAL_S = 0.5  # key frames at 2 Hz

# nuPlan-like map locations with their UTM-style origins (metres).
CITY_ORIGINS = {
    'las_vegas': (664000.0, 3997000.0),
    'pittsburgh': (587000.0, 4475000.0),
    'boston': (331000.0, 4690000.0),
    'singapore': (365000.0, 143000.0),
}

# Ego vehicle footprint relative to the ego origin (rear axle on the ground).
EGO_CENTRE_X, EGO_HALF_LENGTH, EGO_HALF_WIDTH = 1.45, 2.5, 1.05
COLLISION_DT = 0.25  # seconds between the instants at which overlaps are tested
DRIVING_COMMAND_HORIZON_S = 3.0
DRIVING_COMMAND_LATERAL_M = 1.5
ROADSIDE_REACH = 130.0  # metres of roadside built before and after the ego's path
_FINE_DT = 0.05  # seconds; ego motion is integrated on this grid


def grid_placement(description=OPENSCENE, grid2ego=None):
    """Where a dataset's grid lies around the ego: the x-y centre (2,) of its range in the ego
    frame (metres) and its smallest half extent in x and y (metres).

    Args:
        description: OccDescription (point_cloud_range in its grid frame).
        grid2ego: (4, 4) pose of the grid's frame in the ego frame; None: the dataset's lidar
            (rig.lidar2ego_matrix), right for grids in the lidar frame.
    """
    grid2ego = lidar2ego_matrix(description) if grid2ego is None else np.asarray(grid2ego)
    lo, hi = np.asarray(description.point_cloud_range[:2]), np.asarray(
        description.point_cloud_range[3:5])
    centre = grid2ego[:2, :2] @ ((lo + hi) / 2) + grid2ego[:2, 3]
    return centre, float(np.min((hi - lo) / 2))


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
class World:
    """One log's scene: where the road is, what stands beside it, how the ego drives and what
    moves around."""
    map_location: str
    layout: RoadLayout
    sun_direction: np.ndarray  # (3,) unit vector towards the sun, global
    roadblock_base: int
    traffic_light_ids: list
    ego: EgoTrajectory
    objects: ObjectTracks
    structures: Parts  # static roadside parts, global frame


def frame_time(frame_idx):
    """Seconds since the start of the log of key frame `frame_idx`."""
    return frame_idx * FRAME_INTERVAL_S


def roadblock_ids(world, frame_indices):
    """Ids (str) of the 100 m road blocks the ego drives through over the given frames."""
    s = world.ego.translation[list(frame_indices), 0] - world.layout.origin[0]
    blocks = np.arange(np.floor(s.min() / 100.0), np.floor(s.max() / 100.0) + 1).astype(int)
    return [str(world.roadblock_base + b) for b in blocks]


def traffic_lights(world, time):
    """[(lane connector id, is_red)] at `time` seconds; each light cycles every 40 s."""
    return [(light_id, bool(((time + 13.0 * i) % 40.0) < 18.0))
            for i, light_id in enumerate(world.traffic_light_ids)]


def make_world(rng, num_frames, description=OPENSCENE, grid2ego=None):
    """Build one log's scene for `num_frames` key frames from the Generator `rng`; objects
    are spawned to fill the grid of `description` placed at `grid2ego` (grid_placement)."""
    grid_centre, grid_half = grid_placement(description, grid2ego)
    map_location = str(rng.choice(sorted(CITY_ORIGINS)))
    road_origin = np.asarray(CITY_ORIGINS[map_location]) + np.round(rng.uniform(0, 3000, 2))
    direction = float(rng.choice([-1.0, 1.0]))
    sun_azimuth, sun_elevation = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(50, 70))
    sun_direction = np.array([np.cos(sun_azimuth) * np.cos(sun_elevation),
                              np.sin(sun_azimuth) * np.cos(sun_elevation), np.sin(sun_elevation)])
    ego, ego_fine = _ego_motion(rng, num_frames, direction, road_origin)
    ego_s = ego.translation[:, 0] - road_origin[0]
    s_range = (ego_s.min() - ROADSIDE_REACH, ego_s.max() + ROADSIDE_REACH)
    layout = make_layout(rng, road_origin, s_range)
    structures, footprints = make_roadside(rng, layout, s_range)
    frame_times = frame_time(np.arange(num_frames))
    grid_xy = (ego.translation[:, :2]
                + grid_centre[0] * np.stack([np.cos(ego.yaw), np.sin(ego.yaw)], axis=1)
                + grid_centre[1] * np.stack([-np.sin(ego.yaw), np.cos(ego.yaw)], axis=1))
    heading = np.stack([np.cos(ego_fine['yaw']), np.sin(ego_fine['yaw'])], axis=1)
    ego_footprint = {'time': ego_fine['time'], 'centre': ego_fine['xy'] + EGO_CENTRE_X * heading,
                     'yaw': ego_fine['yaw'], 'half': np.array([EGO_HALF_LENGTH, EGO_HALF_WIDTH])}
    objects = spawn_objects(rng, frame_times, grid_xy, ego.yaw, ego_footprint, footprints,
                            layout, grid_half)
    return World(
        map_location=map_location, layout=layout, sun_direction=sun_direction,
        roadblock_base=int(rng.integers(10000, 90000)),
        traffic_light_ids=[int(v) for v in rng.integers(40000, 60000, rng.integers(0, 4))],
        ego=ego, objects=objects, structures=structures)


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
    lateral_ahead = to_heading_frame(xy[ahead] - xy, yaw)[:, 1]
    command = np.where(lateral_ahead > DRIVING_COMMAND_LATERAL_M, 0,
                       np.where(lateral_ahead < -DRIVING_COMMAND_LATERAL_M, 2, 1))
    keys = np.arange(num_frames) * steps
    zeros = np.zeros((num_frames, 1))
    ego = EgoTrajectory(
        translation=np.concatenate([xy[keys], zeros], axis=1),
        yaw=(yaw[keys] + np.pi) % (2 * np.pi) - np.pi,
        velocity=np.concatenate([to_heading_frame(vel, yaw)[keys], zeros], axis=1),
        acceleration=np.concatenate([to_heading_frame(acc, yaw)[keys], zeros], axis=1),
        angular_rate=np.concatenate([zeros, zeros, yaw_rate[keys, None]], axis=1),
        driving_command=command[keys])
    stride = int(round(COLLISION_DT / _FINE_DT))
    fine = {'time': t[:keys[-1] + 1:stride], 'xy': xy[:keys[-1] + 1:stride],
            'yaw': yaw[:keys[-1] + 1:stride]}
    return ego, fine


