"""Camera rigs and lidar mountings of the synthetic vehicles, one per dataset description:
OpenScene's nuPlan-like 8 cameras (mounted relative to the lidar) and Occ3D-nuScenes' 6
nuScenes-like cameras (mounted relative to the ego origin, as nuScenes calibrates them).

Ego frame: origin on the ground at the rear axle, x forward, y left, z up. OpenScene lidar frame:
the ego axes, LIDAR2EGO_TRANSLATION away. nuScenes lidar frame: x to the ego's right, y forward
(NUSCENES_LIDAR2EGO_YAW). Camera frame (OpenCV): x right, y down, z forward.
`sensor2lidar_rotation` holds the camera axes, expressed in the lidar frame, as its columns.
"""
import numpy as np

from occnet.descriptions import OCC3D_NUSCENES, OPENSCENE
from occnet.geometry import pose_matrix

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

# nuScenes-like vehicle (Occ3D-nuScenes): the lidar 1.84 m above the ego origin, turned so
# that its x axis points to the ego's right, as nuScenes' LIDAR_TOP.
NUSCENES_LIDAR2EGO_TRANSLATION = (0.94, 0.0, 1.84)  # metres
NUSCENES_LIDAR2EGO_YAW = -np.pi / 2  # radians about z
# name: (x, y, z metres in the ego frame, yaw degrees CCW from ego x, downward pitch degrees),
# close to the nuScenes calibration.
NUSCENES_CAMERA_MOUNTS = {
    'CAM_FRONT': (1.70, 0.02, 1.51, 0.0, 0.0),
    'CAM_FRONT_RIGHT': (1.55, -0.49, 1.50, -55.0, 0.0),
    'CAM_FRONT_LEFT': (1.52, 0.49, 1.51, 55.0, 0.0),
    'CAM_BACK': (0.03, 0.0, 1.58, 180.0, 0.0),
    'CAM_BACK_LEFT': (1.04, 0.48, 1.59, 110.0, 0.0),
    'CAM_BACK_RIGHT': (1.01, -0.48, 1.56, -110.0, 0.0),
}
assert set(NUSCENES_CAMERA_MOUNTS) == set(OCC3D_NUSCENES.camera_names)
# (focal, principal point) pixels of each dataset's original cameras (at its image_size).
ORIGINAL_INTRINSICS = {OPENSCENE.name: (ORIGINAL_FOCAL, ORIGINAL_PRINCIPAL_POINT),
                       OCC3D_NUSCENES.name: (1266.4, (816.3, 491.5))}

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


def camera_intrinsic(image_size, description=OPENSCENE):
    """(3, 3) intrinsic of the dataset's original cameras (OpenScene 1920 x 1080, nuScenes
    1600 x 900) scaled to `image_size` = (width, height) pixels."""
    focal, principal = ORIGINAL_INTRINSICS[_rig_name(description)]
    sx = image_size[0] / description.image_size[0]
    sy = image_size[1] / description.image_size[1]
    return np.array([[focal * sx, 0.0, principal[0] * sx],
                     [0.0, focal * sy, principal[1] * sy],
                     [0.0, 0.0, 1.0]])


def _rig_name(description):
    if description.name not in ORIGINAL_INTRINSICS:
        raise ValueError(f'no synthetic camera rig for dataset {description.name!r}; rigs '
                         f'exist for {sorted(ORIGINAL_INTRINSICS)} (synthetic/rig.py)')
    return description.name


def lidar2ego_quaternion(description=OPENSCENE):
    """(translation (3,) metres, rotation quaternion [w, x, y, z]) of the dataset's lidar in
    the ego frame, as the infos store it."""
    if _rig_name(description) == OPENSCENE.name:
        return np.array(LIDAR2EGO_TRANSLATION), np.array([1.0, 0.0, 0.0, 0.0])
    half = NUSCENES_LIDAR2EGO_YAW / 2
    return (np.array(NUSCENES_LIDAR2EGO_TRANSLATION),
            np.array([np.cos(half), 0.0, 0.0, np.sin(half)]))


def lidar2ego_matrix(description=OPENSCENE):
    """(4, 4) lidar -> ego pose of the dataset's vehicles (the same for every log), built
    from lidar2ego_quaternion as the infos readers build it."""
    return pose_matrix(*lidar2ego_quaternion(description))


def make_rig(rng, image_size, description=OPENSCENE):
    """Calibration of one vehicle: a `cams` dict as in the dataset's metadata.

    Args:
        rng: numpy Generator; draws this vehicle's small calibration perturbation.
        image_size: (width, height) of the rendered images in pixels.
        description: OPENSCENE (8 cameras, mounts relative to the lidar) or OCC3D_NUSCENES
            (6 cameras, mounts relative to the ego).
    Returns:
        dict CAM_* (in description.camera_names order) -> {sensor2lidar_rotation (3, 3),
        sensor2lidar_translation (3,) metres, cam_intrinsic (3, 3), distortion (5,) zeros};
        nuScenes cameras also carry sensor2ego_rotation (3, 3) and sensor2ego_translation (3,).
    """
    if _rig_name(description) == OCC3D_NUSCENES.name:
        return _nuscenes_rig(rng, image_size)
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


def _nuscenes_rig(rng, image_size):
    """make_rig of the nuScenes-like vehicle: cameras placed in the ego frame, then expressed
    in the (turned) lidar frame."""
    cams = {}
    intrinsic = camera_intrinsic(image_size, OCC3D_NUSCENES)
    ego2lidar = np.linalg.inv(lidar2ego_matrix(OCC3D_NUSCENES))
    for name in OCC3D_NUSCENES.camera_names:
        x, y, z, yaw_deg, pitch_deg = NUSCENES_CAMERA_MOUNTS[name]
        d_yaw, d_pitch, d_roll = np.deg2rad(rng.uniform(-CALIB_ANGLE_DEG, CALIB_ANGLE_DEG, 3))
        rotation = camera_rotation(np.deg2rad(yaw_deg) + d_yaw, np.deg2rad(pitch_deg) + d_pitch,
                                   d_roll)
        translation = np.array([x, y, z]) + rng.uniform(-CALIB_TRANSLATION_M,
                                                        CALIB_TRANSLATION_M, 3)
        cams[name] = {
            'sensor2lidar_rotation': ego2lidar[:3, :3] @ rotation,
            'sensor2lidar_translation': ego2lidar[:3, :3] @ translation + ego2lidar[:3, 3],
            'cam_intrinsic': intrinsic.copy(),
            'distortion': np.zeros(5),
            'sensor2ego_rotation': rotation,
            'sensor2ego_translation': translation,
        }
    return cams
