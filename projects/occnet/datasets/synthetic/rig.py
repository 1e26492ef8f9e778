"""Camera rig and lidar mounting of the synthetic vehicles, in the OpenScene conventions.

Lidar frame: x forward, y left, z up. Camera frame (OpenCV): x right, y down, z forward.
`sensor2lidar_rotation` holds the camera axes, expressed in the lidar frame, as its columns.
"""
import numpy as np

from occnet.descriptions import OPENSCENE

# The ego origin lies on the ground: the flat ground is the plane z = GROUND_Z in the lidar frame.
LIDAR2EGO_TRANSLATION = (1.5, 0.0, 2.0)  # metres; identity rotation
GROUND_Z = -LIDAR2EGO_TRANSLATION[2]

# Pinhole intrinsics of the release's 1920 x 1080 cameras (pixels).
ORIGINAL_FOCAL = 1545.0
ORIGINAL_PRINCIPAL_POINT = (960.0, 560.0)

CAMERA_HEIGHT = 1.65  # metres above the ground
# name: (yaw in degrees CCW from lidar x, offset in metres from the lidar along that yaw,
#        downward pitch in degrees)
CAMERA_MOUNTS = {
    'CAM_F0': (0.0, 1.0, 1.0),
    'CAM_L0': (55.0, 0.6, 2.0),
    'CAM_L1': (90.0, 0.4, 2.5),
    'CAM_L2': (135.0, 0.5, 2.0),
    'CAM_R0': (-55.0, 0.6, 2.0),
    'CAM_R1': (-90.0, 0.4, 2.5),
    'CAM_R2': (-135.0, 0.5, 2.0),
    'CAM_B0': (180.0, 0.9, 1.5),
}
assert set(CAMERA_MOUNTS) == set(OPENSCENE.camera_names)

# Per-vehicle calibration spread: each log's rig differs by up to this much.
CALIB_ANGLE_DEG = 1.0
CALIB_TRANSLATION_M = 0.02

# Columns: camera x (right) = -lidar y, camera y (down) = -lidar z, camera z (forward) = lidar x.
_CAMERA_AXES_AT_ZERO = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _rot_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def camera_rotation(yaw, pitch, roll):
    """sensor2lidar rotation (3, 3) of a camera looking along `yaw` (radians, CCW from lidar x),
    tilted down by `pitch` and rolled by `roll` about its optical axis (radians)."""
    return _rot_z(yaw) @ _rot_y(pitch) @ _CAMERA_AXES_AT_ZERO @ _rot_z(roll)


def camera_intrinsic(image_size):
    """(3, 3) intrinsic of the release cameras scaled to `image_size` = (width, height) pixels."""
    sx = image_size[0] / OPENSCENE.image_size[0]
    sy = image_size[1] / OPENSCENE.image_size[1]
    return np.array([[ORIGINAL_FOCAL * sx, 0.0, ORIGINAL_PRINCIPAL_POINT[0] * sx],
                     [0.0, ORIGINAL_FOCAL * sy, ORIGINAL_PRINCIPAL_POINT[1] * sy],
                     [0.0, 0.0, 1.0]])


def make_rig(rng, image_size):
    """Calibration of one vehicle: a `cams` dict as in the OpenScene metadata.

    Args:
        rng: numpy Generator; draws this vehicle's small calibration perturbation.
        image_size: (width, height) of the rendered images in pixels.
    Returns:
        dict CAM_* (in OPENSCENE.camera_names order) -> {sensor2lidar_rotation (3, 3),
        sensor2lidar_translation (3,) metres, cam_intrinsic (3, 3), distortion (5,) zeros}.
    """
    cams = {}
    intrinsic = camera_intrinsic(image_size)
    for name in OPENSCENE.camera_names:
        yaw_deg, offset, pitch_deg = CAMERA_MOUNTS[name]
        d_yaw, d_pitch, d_roll = np.deg2rad(rng.uniform(-CALIB_ANGLE_DEG, CALIB_ANGLE_DEG, 3))
        yaw = np.deg2rad(yaw_deg)
        translation = np.array([offset * np.cos(yaw), offset * np.sin(yaw),
                                CAMERA_HEIGHT + GROUND_Z])
        translation += rng.uniform(-CALIB_TRANSLATION_M, CALIB_TRANSLATION_M, 3)
        cams[name] = {
            'sensor2lidar_rotation': camera_rotation(yaw + d_yaw, np.deg2rad(pitch_deg) + d_pitch,
                                                     d_roll),
            'sensor2lidar_translation': translation,
            'cam_intrinsic': intrinsic.copy(),
            'distortion': np.zeros(5),
        }
    return cams
