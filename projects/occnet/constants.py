"""Facts about OpenScene occupancy shared by every module: classes, cameras, grid geometry.

Import from here; never restate a class index, camera name or grid size elsewhere.
"""

# Occupancy classes as published (index -> name). Slots 1-3 are unused placeholders.
CLASS_NAMES = (
    'vehicle', 'place_holder1', 'place_holder2', 'place_holder3', 'czone_sign', 'bicycle',
    'generic_object', 'pedestrian', 'traffic_cone', 'barrier', 'background')
REAL_CLASS_INDICES = (0, 4, 5, 6, 7, 8, 9, 10)  # the 8 classes that occur in the labels
FOREGROUND_MAX = 10  # foreground = class index < 10 (everything but background)
BACKGROUND_INDEX = 10
FREE_INDEX = 11  # label of empty voxels in dense grids
IGNORE_INDEX = 255  # voxels excluded from losses and metrics
NUM_CLASSES = 12  # logits per voxel: classes 0..10 plus free
NUM_METRIC_SLOTS_BASELINE = 16  # the published baseline averaged over 16 class slots

# Cameras in the fixed order every tensor of shape (N_cam, ...) follows.
CAMERA_NAMES = ('CAM_F0', 'CAM_L0', 'CAM_L1', 'CAM_L2', 'CAM_R0', 'CAM_R1', 'CAM_R2', 'CAM_B0')

# Occupancy grid in each frame's lidar frame: metres, [x_min, y_min, z_min, x_max, y_max, z_max].
POINT_CLOUD_RANGE = (-50.0, -50.0, -4.0, 50.0, 50.0, 4.0)
VOXEL_SIZE = 0.5  # metres
GRID_SHAPE = (200, 200, 16)  # (X, Y, Z) voxels; dense arrays are indexed [x, y, z]

# Original camera resolution of the release (width, height) in pixels.
ORIGINAL_IMAGE_SIZE = (1920, 1080)

# Colours (RGB, 0-255) for drawing classes; index FREE_INDEX is drawn as empty space.
CLASS_PALETTE = (
    (30, 110, 255),   # vehicle
    (0, 0, 0), (0, 0, 0), (0, 0, 0),  # unused placeholders
    (40, 200, 90),    # czone_sign
    (255, 215, 0),    # bicycle
    (150, 80, 200),   # generic_object
    (255, 60, 180),   # pedestrian
    (255, 140, 0),    # traffic_cone
    (220, 30, 30),    # barrier
    (150, 150, 150),  # background
    (255, 255, 255),  # free
)
