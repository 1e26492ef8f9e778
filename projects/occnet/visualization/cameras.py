"""The 8 camera images with an occupancy grid projected onto them."""
import cv2
import numpy as np

from occnet.constants import BACKGROUND_INDEX, CAMERA_NAMES, CLASS_PALETTE, FREE_INDEX
from occnet.geometry import project_points, voxel_centers
from occnet.visualization.topdown import _put_text, write_rgb


def overlay_occupancy(image, lidar2img, dense, skip_classes=(BACKGROUND_INDEX,), alpha=0.6,
                      radius=2, min_depth=0.5):
    """Draw the occupied voxel centres of `dense` that fall inside one camera image as dots in
    their class colour, far ones first so near ones stay on top.

    Args:
        image: (H, W, 3) uint8 RGB.
        lidar2img: (4, 4) projection from the lidar frame to this image's pixels.
        dense: (X, Y, Z) labels (free = 11).
        skip_classes: classes not drawn (the ground would cover everything).
        alpha: opacity of the dots.
        radius: dot radius in pixels.
        min_depth: metres; closer voxels are not drawn.
    Returns:
        (H, W, 3) uint8 RGB copy with the dots; the number of voxels drawn.
    """
    dense = np.asarray(dense)
    keep = (dense != FREE_INDEX) & ~np.isin(dense, skip_classes)
    centres = voxel_centers(dense.shape)[keep]
    classes = dense[keep]
    uv, depth = project_points(centres, np.asarray(lidar2img, dtype=np.float64))
    height, width = image.shape[:2]
    inside = ((depth > min_depth) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0)
              & (uv[:, 1] < height))
    order = np.flatnonzero(inside)[np.argsort(-depth[inside])]
    layer = image.copy()
    for i in order:
        colour = tuple(int(c) for c in CLASS_PALETTE[classes[i]])
        cv2.circle(layer, (int(uv[i, 0]), int(uv[i, 1])), radius, colour, -1)
    blended = cv2.addWeighted(layer, alpha, image, 1 - alpha, 0)
    return blended, len(order)


def render_camera_overlays(images, lidar2imgs, dense, width=480, **kwargs):
    """The cameras in CAMERA_NAMES order (front row: F0, L0, L1, L2; back row: R0, R1, R2,
    B0), each resized to `width` pixels with `dense` overlaid and its name written on it.

    Args:
        images: 8 (H, W, 3) uint8 RGB images.
        lidar2imgs: (8, 4, 4) projections to those images' pixels.
        dense: (X, Y, Z) labels.
    Returns:
        (2 * h, 4 * width, 3) uint8 RGB.
    """
    tiles = []
    for name, image, lidar2img in zip(CAMERA_NAMES, images, lidar2imgs):
        overlaid, _ = overlay_occupancy(image, lidar2img, dense, **kwargs)
        height = int(round(image.shape[0] * width / image.shape[1]))
        tile = cv2.resize(overlaid, (width, height), interpolation=cv2.INTER_AREA)
        _put_text(tile, name, (6, 18), size=0.5, colour=(255, 255, 255))
        tiles.append(tile)
    return np.concatenate([np.concatenate(tiles[:4], axis=1),
                           np.concatenate(tiles[4:], axis=1)], axis=0)


def save_camera_overlays(images, lidar2imgs, dense, path, **kwargs):
    """Write render_camera_overlays as a PNG (folders created); returns the path."""
    return write_rgb(path, render_camera_overlays(images, lidar2imgs, dense, **kwargs))
