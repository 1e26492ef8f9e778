"""Bird's-eye renders of per-voxel flow: direction as hue, speed as saturation.

Orientation as in topdown.py: the grid's +x (forward) up the image, +y (left) to the left.
"""
import cv2
import numpy as np

from occnet.descriptions import get_description
from occnet.visualization.topdown import (FREE_RGB, _put_text, _to_image_orientation,
                                          _upscale, column_top_classes, write_rgb)

STILL_RGB = (190, 190, 190)  # occupied columns moving slower than `min_speed`


def flow_hue_degrees(vx, vy):
    """Hue (degrees, 0..360) of a flow direction as it appears in the image: up (+x, forward)
    is 0 (red), left (+y) is 90, down (backwards) 180, right (-y) 270."""
    return np.degrees(np.arctan2(vy, vx)) % 360.0


def topdown_flow_map(dense, flow, max_speed=10.0, min_speed=0.2, scale=1, dataset='openscene'):
    """Top-down RGB image of the flow of each column's highest occupied voxel.

    Args:
        dense: (X, Y, Z) labels (the dataset's free_index and ignore_index are empty;
            OpenScene: free = 11): which voxel of a column is shown.
        flow: (X, Y, Z, 2) vx, vy in m/s, in the grid's frame.
        max_speed: speed (m/s) drawn fully saturated.
        min_speed: slower occupied columns are drawn grey (STILL_RGB).
        scale: pixels per voxel.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        (X * scale, Y * scale, 3) uint8 RGB: free columns near-white, still ones grey, moving
        ones in the hue of their direction (flow_hue_degrees) with saturation speed / max_speed.
    """
    desc = get_description(dataset)
    top_class, top_z = column_top_classes(dense, desc)
    occupied = top_class != desc.free_index
    top = np.take_along_axis(np.asarray(flow, dtype=np.float64),
                             np.maximum(top_z, 0)[..., None, None], axis=2)[:, :, 0]  # (X, Y, 2)
    speed = np.hypot(top[..., 0], top[..., 1])
    hsv = np.zeros((*top_class.shape, 3), dtype=np.float32)
    hsv[..., 0] = flow_hue_degrees(top[..., 0], top[..., 1])
    hsv[..., 1] = np.clip(speed / max_speed, 0.25, 1.0)
    hsv[..., 2] = 1.0
    image = (cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255).round().astype(np.uint8)
    image[occupied & (speed < min_speed)] = STILL_RGB
    image[~occupied] = FREE_RGB
    return _upscale(_to_image_orientation(image), scale)


def render_flow_gt_vs_pred(gt, gt_flow, pred, pred_flow, max_speed=10.0, scale=3,
                           dataset='openscene'):
    """Ground-truth flow | predicted flow, side by side, with titles and a colour wheel key.

    Args:
        gt, pred: (X, Y, Z) label grids; gt_flow, pred_flow: (X, Y, Z, 2) m/s.
        max_speed: speed (m/s) drawn fully saturated; scale: pixels per voxel.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        (H, W, 3) uint8 RGB.
    """
    desc = get_description(dataset)
    panels = [topdown_flow_map(gt, gt_flow, max_speed, scale=scale, dataset=desc),
              topdown_flow_map(pred, pred_flow, max_speed, scale=scale, dataset=desc)]
    height, width = panels[0].shape[:2]
    margin, top = 10, 34
    canvas = np.full((height + top + margin, 2 * width + 3 * margin, 3), 255, dtype=np.uint8)
    for i, (panel, title) in enumerate(zip(panels, ('ground-truth flow', 'predicted flow'))):
        x0 = margin + i * (width + margin)
        canvas[top:top + height, x0:x0 + width] = panel
        _put_text(canvas, title, (x0, top - 10))
    _put_text(canvas, f'hue = direction (red = forward), saturation = speed (full at '
              f'{max_speed:g} m/s), grey = still', (margin, height + top + margin - 2),
              size=0.4)
    return canvas


def save_flow_gt_vs_pred(gt, gt_flow, pred, pred_flow, path, max_speed=10.0, scale=3,
                         dataset='openscene'):
    """Write render_flow_gt_vs_pred as a PNG (folders created); returns the path."""
    return write_rgb(path, render_flow_gt_vs_pred(gt, gt_flow, pred, pred_flow, max_speed,
                                                  scale, dataset))
