"""The rays of RayIoU as SparseOcc (Liu et al. 2024) defines it on Occ3D-nuScenes.

- Directions: pitch angles -(pi/2 - atan(k + 1)) for k = 0..9 (-45 deg up to -5.7 deg),
  then continued with the last step (0.011 rad) while below 0.21 rad (the nuScenes lidar's
  upper field of view): 39 pitches; at each, azimuths 0, 1, ..., 359 degrees. 14040 rays.
- Origins: the lidar origin of every key frame of the scene (the current one included),
  taken into the current lidar frame and then the current **ego** frame (the Occ3D grid's);
  those with |x| and |y| below 39 m are kept, and of those at most 8, at the indices
  round(linspace(0, n - 1, 8)) in time order.
These are geometry facts of the protocol; the origins are computed by
occnet.geometry.sparseocc_ray_origins (the datasets need them too), the ray casting and the
counting by occnet.evaluation.ray_iou.
"""
import math

import numpy as np

NUM_DOWN_PITCHES = 10
TOP_PITCH_RAD = 0.21


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
