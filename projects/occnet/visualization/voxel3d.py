"""3D renders of occupancy grids from a chase camera behind and above the ego vehicle.

Every pixel casts one ray through the grid (the vectorised voxel traversal of RayIoU,
occnet.evaluation.ray_iou.march_rays), so a frame needs no OpenGL and no compiled code: the
first occupied voxel gives the pixel's class colour, the face it was entered through gives the
shading (tops brightest), voxel edges are darkened and far voxels fade into the sky.
Classes, palette, free / ignore labels and the grid's extent come from `dataset` (a name, an
OccDescription or a `metainfo()` dict; see occnet.descriptions).
"""
import numpy as np

from occnet.descriptions import get_description
from occnet.evaluation.ray_iou import march_rays
from occnet.visualization.topdown import (ERROR_KINDS, _legend_entries, compose_panels,
                                          error_kinds, object_agreement, write_rgb)

SKY_TOP_RGB = np.array((205, 222, 240), dtype=np.float64)
SKY_BOTTOM_RGB = np.array((245, 247, 250), dtype=np.float64)
FACE_SHADE = (0.80, 0.64, 1.0)  # brightness of faces whose normal is along x, y, z
EGO_RGB = (70, 70, 80)
# The ego marker: a box (metres, lower and upper corner) in the frame the grid lives in (the
# description's `grid_frame`), drawn where the grid is free. 'lidar': nuPlan's roof lidar
# above the vehicle centre (OpenScene); 'ego': the nuScenes ego frame, origin at the rear axle
# on the ground (Occ3D), a 4.1 x 1.8 x 1.6 m car.
EGO_BOXES = {
    'lidar': ((-2.4, -1.0, -1.9), (2.4, 1.0, -0.3)),
    'ego': ((-0.7, -0.9, 0.0), (3.4, 0.9, 1.6)),
}
# Error classes of error_grid (values 0..3), coloured as in the top-down error map.
ERROR_PALETTE = tuple(colour for _, colour in ERROR_KINDS)


class ChaseCamera:
    """A pinhole camera in the grid's frame (lidar for OpenScene, ego for Occ3D) looking at a
    target point, z up.

    Args:
        position: (3,) metres, where the camera is.
        target: (3,) metres, the point at the image centre.
        fov_deg: horizontal field of view in degrees.
        size: (width, height) of the image in pixels.
    """

    def __init__(self, position=(-24.0, 0.0, 16.0), target=(14.0, 0.0, -2.0), fov_deg=70.0,
                 size=(480, 300)):
        self.position = np.asarray(position, dtype=np.float64)
        self.size = tuple(int(v) for v in size)
        forward = np.asarray(target, dtype=np.float64) - self.position
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, (0.0, 0.0, 1.0))
        if np.linalg.norm(right) < 1e-6:
            raise ValueError('the chase camera cannot look straight up or down')
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        self.rotation = np.stack([right, down, forward], axis=1)  # camera -> grid frame
        self.focal = 0.5 * self.size[0] / np.tan(np.radians(fov_deg) / 2)

    def pixel_rays(self):
        """(H * W, 3) unit ray directions in the grid frame, row-major from the top left
        pixel, through pixel centres."""
        width, height = self.size
        u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        cam = np.stack([(u - width / 2) / self.focal, (v - height / 2) / self.focal,
                        np.ones_like(u)], axis=-1).reshape(-1, 3)
        dirs = cam @ self.rotation.T
        return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)

    def project(self, points):
        """(N, 3) grid-frame points -> (N, 2) pixel coordinates and (N,) depths (metres
        along the viewing axis; <= 0 behind the camera)."""
        cam = (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation
        depth = cam[:, 2]
        with np.errstate(divide='ignore', invalid='ignore'):
            uv = cam[:, :2] / depth[:, None] * self.focal + np.array(self.size) / 2
        return uv, depth


def box_entry(origin, dirs, lower, upper):
    """Where rays from `origin` enter an axis-aligned box (the slab method).

    Args:
        origin: (3,) metres; dirs: (N, 3) unit vectors; lower, upper: (3,) box corners.
    Returns:
        t_enter: (N,) metres along each ray to the box (0 if the origin is inside), inf for
            rays that miss it; enter_axis: (N,) the axis of the face entered (-1 if inside).
    """
    origin = np.asarray(origin, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        t0 = (np.asarray(lower) - origin) / dirs
        t1 = (np.asarray(upper) - origin) / dirs
    near = np.where(np.isnan(t0), -np.inf, np.minimum(t0, t1))
    far = np.where(np.isnan(t0), np.inf, np.maximum(t0, t1))
    outside_slab = (dirs == 0) & ((origin < lower) | (origin > upper))
    near[outside_slab] = np.inf
    t_enter = near.max(axis=1)
    enter_axis = near.argmax(axis=1)
    t_exit = far.min(axis=1)
    inside = t_enter <= 0
    enter_axis[inside] = -1
    t_enter = np.maximum(t_enter, 0.0)
    t_enter[t_enter >= t_exit] = np.inf
    return t_enter, enter_axis


def error_grid(gt, pred, dataset='openscene'):
    """Per-voxel agreement of two label grids, for rendering with ERROR_PALETTE:
    topdown.error_kinds of the voxels ((X, Y, Z) uint8, 0..3, the dataset's free_index where
    both are empty; its ignore_index voxels of gt count as free)."""
    return error_kinds(gt, pred, dataset)


def ego_cells(shape, pc_range, voxel_size, box):
    """(slice x, slice y, slice z) of the voxels of an (X, Y, Z) grid `shape` starting at
    pc_range[:3] (metres) with `voxel_size` (metres) that are inside the box
    ((x, y, z) lower, (x, y, z) upper corner, metres)."""
    lower = np.asarray(pc_range[:3])
    lo = np.floor((np.asarray(box[0]) - lower) / voxel_size).astype(int)
    hi = np.ceil((np.asarray(box[1]) - lower) / voxel_size).astype(int)
    lo, hi = np.clip(lo, 0, shape), np.clip(hi, 0, shape)
    return tuple(np.s_[a:b] for a, b in zip(lo, hi))


def render_voxels(grid, camera=None, palette=None, empty=None, draw_ego=True, pc_range=None,
                  voxel_size=None, fog_m=(40.0, 110.0), dataset='openscene', ego_box=None):
    """Shaded 3D view of an (X, Y, Z) grid from `camera` (default: ChaseCamera()).

    Args:
        grid: (X, Y, Z) integer values, indices into `palette`; values in `empty` are not
            drawn.
        palette: RGB 0..255 colour per value (default: the dataset's palette).
        empty: values not drawn (default: the dataset's free_index and ignore_index).
        draw_ego: mark the ego vehicle as a dark box where the grid is free.
        pc_range: (x_min, y_min, z_min, x_max, y_max, z_max) metres, of which the grid's lower
            corner is used (default: the dataset's point_cloud_range).
        voxel_size: metres per voxel (default: the dataset's voxel_size).
        fog_m: (start, end) metres over which voxels fade half-way into the sky colour.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
        ego_box: ((x, y, z) lower, (x, y, z) upper) metres of the ego marker (default:
            EGO_BOXES of the dataset's grid_frame).
    Returns:
        (H, W, 3) uint8 RGB and the (H, W) float depth in metres (inf for sky).
    """
    desc = get_description(dataset)
    palette = desc.palette if palette is None else palette
    empty = (desc.free_index, desc.ignore_index) if empty is None else empty
    pc_range = desc.point_cloud_range if pc_range is None else pc_range
    voxel_size = desc.voxel_size if voxel_size is None else voxel_size
    ego_box = EGO_BOXES[desc.grid_frame] if ego_box is None else ego_box
    camera = camera or ChaseCamera()
    grid = np.asarray(grid)
    if grid.ndim != 3:
        raise ValueError(f'expected an (X, Y, Z) grid, got shape {grid.shape}')
    colours = np.zeros((256, 3), dtype=np.float64)
    colours[:len(palette)] = palette
    ego_value = None
    if draw_ego:
        ego_value = len(palette)
        colours[ego_value] = EGO_RGB
        cells = ego_cells(grid.shape, pc_range, voxel_size, ego_box)
        grid = grid.copy()
        region = grid[cells]
        region[np.isin(region, empty)] = ego_value
        grid[cells] = region

    width, height = camera.size
    dirs = camera.pixel_rays()
    lower = np.asarray(pc_range[:3], dtype=np.float64)
    upper = lower + np.array(grid.shape) * voxel_size
    t_enter, enter_axis = box_entry(camera.position, dirs, lower, upper)
    enters = np.isfinite(t_enter)
    starts = camera.position + dirs[enters] * t_enter[enters, None]
    starts = np.clip(starts, lower + 1e-6, upper - 1e-6)
    cls, depth, axis = march_rays(grid, starts, dirs[enters], free_index=list(empty),
                                  pc_range=pc_range, voxel_size=voxel_size)
    axis = np.where(axis < 0, enter_axis[enters], axis)

    sky = SKY_TOP_RGB + (SKY_BOTTOM_RGB - SKY_TOP_RGB) * (
        np.arange(height, dtype=np.float64) / max(height - 1, 1))[:, None]
    image = np.repeat(sky[:, None, :], width, axis=1).reshape(-1, 3)
    total_depth = np.full(len(dirs), np.inf)
    rays = np.flatnonzero(enters)
    hit = cls >= 0
    rays, cls, axis = rays[hit], cls[hit], np.maximum(axis[hit], 0)
    total_depth[rays] = t_enter[rays] + depth[hit]

    rgb = colours[cls] * np.asarray(FACE_SHADE)[axis, None]
    # darken voxel edges: the hit point's position within its face, in voxel units
    point = (camera.position + dirs[rays] * total_depth[rays, None] - lower) / voxel_size
    frac = point - np.floor(point)
    edge_distance = np.minimum(frac, 1.0 - frac)
    edge_distance[np.arange(len(axis)), axis] = 1.0  # along the normal: not an edge
    near_edge = edge_distance.min(axis=1) < 0.07
    fade = np.clip(1.0 - total_depth[rays] / fog_m[1], 0.0, 1.0)
    rgb[near_edge] *= (1.0 - 0.4 * fade[near_edge])[:, None]
    fog = 0.5 * np.clip((total_depth[rays] - fog_m[0]) / (fog_m[1] - fog_m[0]), 0.0, 1.0)
    rgb = rgb + (image[rays] - rgb) * fog[:, None]
    image[rays] = rgb
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8).reshape(height, width, 3)
    return image, total_depth.reshape(height, width)


def render_chase_gt_vs_pred(gt, pred, title=None, camera=None, dataset='openscene'):
    """Ground truth | prediction | per-voxel errors, each rendered by `render_voxels` from
    the same chase camera, with a legend of the classes and error kinds.

    Args:
        gt, pred: (X, Y, Z) label grids of the same shape (the dataset's free and ignore
            labels; OpenScene: 11 free, 255 ignore).
        title: optional line above the panels.
        camera: ChaseCamera (default: 24 m behind and 16 m above the grid origin, 480 x 300).
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        (H, W, 3) uint8 RGB.
    """
    desc = get_description(dataset)
    camera = camera or ChaseCamera()
    errors = error_grid(gt, pred, desc)
    right = object_agreement(gt, pred, desc)
    panels = [(render_voxels(gt, camera, dataset=desc)[0], 'ground truth'),
              (render_voxels(pred, camera, dataset=desc)[0], 'prediction'),
              (render_voxels(errors, camera, palette=ERROR_PALETTE, dataset=desc)[0],
               f'errors: {right:.1f}% of object voxels right')]
    return compose_panels(panels, title, 'chase camera behind the ego vehicle (dark box)',
                          [_legend_entries(gt, pred, desc), ERROR_KINDS])


def save_chase_gt_vs_pred(gt, pred, path, title=None, camera=None, dataset='openscene'):
    """Write `render_chase_gt_vs_pred` at `path` (folders created); returns the RGB image."""
    image = render_chase_gt_vs_pred(gt, pred, title, camera, dataset)
    write_rgb(path, image)
    return image
