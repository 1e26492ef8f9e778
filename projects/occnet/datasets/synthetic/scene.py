"""One key frame of a synthetic log as parts in the frame's lidar frame: the roadside structures
near the vehicle, then the objects' parts at their positions at that time."""
import numpy as np

from occnet.datasets.synthetic.objects import object_states
from occnet.datasets.synthetic.parts import concat_parts, make_parts, transform_parts

SCENE_REACH = 150.0  # metres; parts farther than this from the lidar are left out


def object_parts(objects, centres, velocities):
    """Parts (global frame) of objects whose boxes have the given global centres (N, 3) and
    velocities (N, 3) (object_states)."""
    owner = objects.part_object
    yaw = objects.yaw[owner]
    cos, sin = np.cos(yaw), np.sin(yaw)
    local = objects.part_boxes
    base = centres[owner, 2] - objects.size[owner, 2] / 2
    boxes = np.column_stack([
        centres[owner, 0] + cos * local[:, 0] - sin * local[:, 1],
        centres[owner, 1] + sin * local[:, 0] + cos * local[:, 1],
        base + local[:, 2] + local[:, 5] / 2, local[:, 3:6], yaw])
    return make_parts(boxes, objects.class_index[owner], -1, owner, objects.part_colour,
                      objects.part_material, velocities[owner, :2])


def frame_parts(world, time, lidar2global, reach=SCENE_REACH):
    """Everything solid around the vehicle at `time` seconds, in the lidar frame.

    Args:
        world: the log's World.
        time: seconds since the start of the log.
        lidar2global: (4, 4) pose of the frame the parts are wanted in: the frame's lidar
            (OpenScene), or any other pose turned about z only (Occ3D: the ego's).
        reach: metres; parts whose bounding circle lies farther from that frame's origin are
            dropped.
    Returns:
        Parts in that frame: the structures first, then the objects (owner = object index
        in world.objects).
    """
    centres, velocities = object_states(world.objects, time, world.layout)
    parts = concat_parts([world.structures, object_parts(world.objects, centres, velocities)])
    radius = np.linalg.norm(parts.boxes[:, 3:5], axis=1) / 2
    distance = np.linalg.norm(parts.boxes[:, :2] - lidar2global[:2, 3], axis=1)
    parts = parts.take(np.flatnonzero(distance - radius < reach))
    return transform_parts(parts, np.linalg.inv(lidar2global))
