"""The rays of RayIoU as SparseOcc (Liu et al. 2024) defines it on Occ3D-nuScenes.

- Directions: pitch angles -(pi/2 - atan(k + 1)) for k = 0..9 (-45 deg up to -5.7 deg),
  then continued with the last step (0.011 rad) while below 0.21 rad (the nuScenes lidar's
  upper field of view): 39 pitches; at each, azimuths 0, 1, ..., 359 degrees. 14040 rays.
- Origins: the lidar origin of every key frame of the scene (the current one included),
  taken into the current lidar frame and then the current **ego** frame (the Occ3D grid's);
  those with |x| and |y| below 39 m are kept, and of those at most 8, at the indices
  round(linspace(0, n - 1, 8)) in time order.
These are geometry facts of the protocol; the ray casting and the counting are
occnet.evaluation.ray_iou's.
"""
import math
from collections import defaultdict

import numpy as np

NUM_DOWN_PITCHES = 10
TOP_PITCH_RAD = 0.21
ORIGIN_LIMIT_M = 39.0
MAX_ORIGINS = 8


def sparseocc_pitch_angles():
    """(39,) float64 pitch angles in radians, lowest first."""
    pitches = [-(math.pi / 2 - math.atan(k + 1)) for k in range(NUM_DOWN_PITCHES)]
    while pitches[-1] < TOP_PITCH_RAD:
        pitches.append(pitches[-1] + (pitches[-1] - pitches[-2]))
    return np.array(pitches)


def sparseocc_ray_directions():
    """(14040, 3) float64 unit vectors, pitch-major: for each pitch, azimuth 0..359 deg
    counter-clockwise from +x."""
    pitch = sparseocc_pitch_angles()[:, None]
    azimuth = np.radians(np.arange(360.0))[None, :]
    return np.stack([np.cos(pitch) * np.cos(azimuth), np.cos(pitch) * np.sin(azimuth),
                     np.broadcast_to(np.sin(pitch), (len(pitch), 360))],
                    axis=-1).reshape(-1, 3)


def sparseocc_ray_origins(cur_lidar2ego, cur_lidar2global, scene_lidar2globals,
                          limit_m=ORIGIN_LIMIT_M, max_origins=MAX_ORIGINS):
    """(O, 3) ray origins in the current ego frame, metres (module docstring).

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
