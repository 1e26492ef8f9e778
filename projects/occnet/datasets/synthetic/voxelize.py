"""Dense per-frame occupancy and flow labels of the synthetic scenes, in the frame's lidar grid."""
import numpy as np

from occnet.constants import BACKGROUND_INDEX, FREE_INDEX, GRID_SHAPE, POINT_CLOUD_RANGE, VOXEL_SIZE
from occnet.datasets.synthetic.rig import GROUND_Z
from occnet.geometry import points_to_voxel_indices

LATTICE_SPACING = 0.2  # metres between the points sampled inside each object box
# Voxel layer whose top face is the ground surface (z index 3 for OpenScene's grid).
GROUND_LAYER = int(round((GROUND_Z - POINT_CLOUD_RANGE[2]) / VOXEL_SIZE)) - 1


def box_lattice(size, spacing=LATTICE_SPACING):
    """Points (P, 3) filling a box of `size` (l, w, h) metres centred at the origin: the centres
    of a regular split of the box into cells no larger than `spacing` (none lies on a face)."""
    axes = []
    for extent in size:
        count = max(int(np.ceil(extent / spacing)), 1)
        axes.append((np.arange(count) + 0.5) * extent / count - extent / 2)
    return np.stack(np.meshgrid(*axes, indexing='ij'), axis=-1).reshape(-1, 3)


def voxelize_frame(boxes, class_indices, velocities):
    """Rasterise the ground and the object boxes of one frame into the occupancy grid.

    Args:
        boxes: (N, 7) x, y, z (box centre), l, w, h, yaw in the frame's lidar frame (metres,
            radians).
        class_indices: (N,) occupancy class of each box.
        velocities: (N, 2) or (N, 3) m/s in the lidar frame.
    Returns:
        labels: (X, Y, Z) uint8; the ground layer GROUND_LAYER is background, free = FREE_INDEX;
            objects overwrite the ground (later boxes win over earlier ones).
        flow: (X, Y, Z, 2) float32 [vx, vy] m/s of the occupying object, 0 elsewhere.
        instance_ids: (X, Y, Z) int32 index of the occupying box, -1 elsewhere.
    """
    labels = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
    labels[:, :, GROUND_LAYER] = BACKGROUND_INDEX
    flow = np.zeros((*GRID_SHAPE, 2), dtype=np.float32)
    instance_ids = np.full(GRID_SHAPE, -1, dtype=np.int32)
    for i, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 7)):
        cos, sin = np.cos(box[6]), np.sin(box[6])
        rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        points = box_lattice(box[3:6]) @ rotation.T + box[:3]
        idx, inside = points_to_voxel_indices(points)
        idx = idx[inside]
        labels[idx[:, 0], idx[:, 1], idx[:, 2]] = class_indices[i]
        flow[idx[:, 0], idx[:, 1], idx[:, 2]] = np.asarray(velocities[i])[:2]
        instance_ids[idx[:, 0], idx[:, 1], idx[:, 2]] = i
    return labels, flow, instance_ids
