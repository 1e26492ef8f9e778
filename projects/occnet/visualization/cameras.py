"""The camera images of a frame with an occupancy grid projected onto them."""
import cv2
import numpy as np

from occnet.descriptions import get_description
from occnet.geometry import project_points, voxel_centers
from occnet.visualization.topdown import _put_text, write_rgb


def ground_classes(desc):
    """The evaluated classes that are not foreground (OpenScene: background; Occ3D: the
    surfaces, manmade and vegetation): the ones a camera overlay leaves out by default."""
    return tuple(c for c in desc.evaluated if c not in desc.foreground)


def overlay_occupancy(image, lidar2img, dense, skip_classes=None, alpha=0.6, radius=2,
                      min_depth=0.5, dataset='openscene'):
    """Draw the occupied voxel centres of `dense` that fall inside one camera image as dots in
    their class colour, far ones first so near ones stay on top.

    Args:
        image: (H, W, 3) uint8 RGB.
        lidar2img: (4, 4) projection from the grid's frame (the dataset's `grid_frame`:
            lidar for OpenScene, ego for Occ3D) to this image's pixels.
        dense: (X, Y, Z) labels (free = the dataset's free_index, not drawn), the voxels of
            the dataset's point_cloud_range at its voxel_size.
        skip_classes: classes not drawn (the ground would cover everything); None: the
            evaluated classes outside the dataset's foreground (`ground_classes`).
        alpha: opacity of the dots.
        radius: dot radius in pixels.
        min_depth: metres; closer voxels are not drawn.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        (H, W, 3) uint8 RGB copy with the dots; the number of voxels drawn.
    """
    desc = get_description(dataset)
    if skip_classes is None:
        skip_classes = ground_classes(desc)
    dense = np.asarray(dense)
    keep = (dense != desc.free_index) & ~np.isin(dense, skip_classes)
    centres = voxel_centers(dense.shape, desc.point_cloud_range, desc.voxel_size)[keep]
    classes = dense[keep]
    uv, depth = project_points(centres, np.asarray(lidar2img, dtype=np.float64))
    height, width = image.shape[:2]
    inside = ((depth > min_depth) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0)
              & (uv[:, 1] < height))
    order = np.flatnonzero(inside)[np.argsort(-depth[inside])]
    layer = image.copy()
    for i in order:
        colour = tuple(int(c) for c in desc.palette[classes[i]])
        cv2.circle(layer, (int(uv[i, 0]), int(uv[i, 1])), radius, colour, -1)
    blended = cv2.addWeighted(layer, alpha, image, 1 - alpha, 0)
    return blended, len(order)


def render_camera_overlays(images, lidar2imgs, dense, width=480, dataset='openscene',
                           **kwargs):
    """The cameras in the dataset's `camera_names` order, in two rows (the first half, then
    the second; OpenScene: F0, L0, L1, L2 over R0, R1, R2, B0), each resized to `width`
    pixels with `dense` overlaid (`overlay_occupancy`) and its name written on it.

    Args:
        images: N_cam (H, W, 3) uint8 RGB images, N_cam = len(camera_names).
        lidar2imgs: (N_cam, 4, 4) projections from the grid's frame to those images' pixels.
        dense: (X, Y, Z) labels.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        (2 * h, ceil(N_cam / 2) * width, 3) uint8 RGB; h = width * H / W.
    """
    desc = get_description(dataset)
    names = desc.camera_names
    if len(images) != len(names) or len(lidar2imgs) != len(names):
        raise ValueError(f'{len(images)} images and {len(lidar2imgs)} projections for the '
                         f'{len(names)} cameras of {desc.name} ({", ".join(names)})')
    tiles = []
    for name, image, lidar2img in zip(names, images, lidar2imgs):
        overlaid, _ = overlay_occupancy(image, lidar2img, dense, dataset=desc, **kwargs)
        height = int(round(image.shape[0] * width / image.shape[1]))
        tile = cv2.resize(overlaid, (width, height), interpolation=cv2.INTER_AREA)
        _put_text(tile, name, (6, 18), size=0.5, colour=(255, 255, 255))
        tiles.append(tile)
    per_row = (len(tiles) + 1) // 2
    tiles += [np.zeros_like(tiles[0])] * (2 * per_row - len(tiles))
    return np.concatenate([np.concatenate(tiles[:per_row], axis=1),
                           np.concatenate(tiles[per_row:], axis=1)], axis=0)


def save_camera_overlays(images, lidar2imgs, dense, path, dataset='openscene', **kwargs):
    """Write render_camera_overlays as a PNG (folders created); returns the path."""
    return write_rgb(path, render_camera_overlays(images, lidar2imgs, dense, dataset=dataset,
                                                  **kwargs))
