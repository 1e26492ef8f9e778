"""What the data pipeline feeds the model, drawn for a person: the augmented camera images of
one sample with its (augmented) labels projected through its (augmented) lidar2img, the
history queue, the top-down labels and the sample's metadata."""
import cv2
import numpy as np

from occnet.descriptions import get_description
from occnet.visualization.cameras import render_camera_overlays
from occnet.visualization.topdown import (CANVAS_RGB, TEXT_RGB, _put_text, compose_panels,
                                          topdown_class_map)


def sample_lines(sample):
    """Text lines describing a packed data sample (token, scene, queue, augmentation)."""
    lines = [f'token {sample.get("token")}  log {sample.get("log_name")}  '
             f'frame {sample.get("frame_idx")}']
    valid = np.asarray(sample.get('queue_valid', [True])).astype(int).tolist()
    lines.append(f'queue slots (oldest first, 1 = real frame): {valid}   scene_start '
                 f'{bool(sample.get("scene_start", False))}   prev_token '
                 f'{sample.get("prev_token")}')
    flip = sample.get('bev_flip', (False, False))
    lines.append(f'image shape {sample.get("img_shape")}   scale factor '
                 f'{sample.get("img_scale_factor")}   BEV flip (x, y) {tuple(flip)}')
    can_bus = sample.get('can_bus')
    if can_bus is not None:
        can_bus = np.asarray(can_bus)[-1]
        lines.append(f'can_bus since the previous frame: dx {can_bus[0]:.2f} m  dy '
                     f'{can_bus[1]:.2f} m (global)  dyaw {can_bus[17]:.2f} deg')
    return lines


def render_pipeline_sample(imgs, lidar2img, sample, camera_width=320, dataset='openscene'):
    """One picture of a packed training / test sample.

    Args:
        imgs: (T, N_cam, 3, H, W) uint8 RGB, the pipeline's output (current frame last),
            cameras in the dataset's `camera_names` order.
        lidar2img: (T, N_cam, 4, 4) projections of those images (from the grid's frame).
        sample: the packed data sample dict (`voxel_semantics` (X, Y, Z) optional; its other
            keys become the text lines of `sample_lines`).
        camera_width: pixels per camera tile.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        (H, W, 3) uint8 RGB: the text lines; the current frame's cameras with its labels
        projected (ground left out); the first (front) camera of every queue slot; the
        top-down labels.
    """
    desc = get_description(dataset)
    imgs = np.asarray(imgs)
    current = [img.transpose(1, 2, 0) for img in imgs[-1]]
    labels = sample.get('voxel_semantics')
    labels = None if labels is None else np.asarray(labels).astype(np.uint8)
    dense = labels if labels is not None else np.full((1, 1, 1), desc.free_index, np.uint8)
    cameras = render_camera_overlays(current, lidar2img[-1], dense, width=camera_width,
                                     dataset=desc)
    width = cameras.shape[1]

    front = 0  # camera_names start with the front camera (CAM_F0, CAM_FRONT)
    slot_w = width // max(len(imgs), 4)
    tiles = []
    for t, frame in enumerate(imgs):
        tile = frame[front].transpose(1, 2, 0)
        height = int(round(tile.shape[0] * slot_w / tile.shape[1]))
        tile = np.ascontiguousarray(cv2.resize(tile, (slot_w, height),
                                               interpolation=cv2.INTER_AREA))
        _put_text(tile, f'slot {t}' + (' (current)' if t == len(imgs) - 1 else ''), (6, 18),
                  0.5, (255, 255, 255))
        tiles.append(tile)
    strip = np.full((tiles[0].shape[0], width, 3), CANVAS_RGB, dtype=np.uint8)
    for t, tile in enumerate(tiles):
        strip[:, t * slot_w:(t + 1) * slot_w] = tile

    lines = sample_lines(sample)
    header = np.full((22 * len(lines) + 12, width, 3), CANVAS_RGB, dtype=np.uint8)
    for i, line in enumerate(lines):
        _put_text(header, line, (8, 22 * (i + 1)), 0.5, TEXT_RGB, max_width=width - 16)
    parts = [header, cameras, strip]
    if labels is not None:
        parts.append(compose_panels([(topdown_class_map(labels, scale=2, dataset=desc),
                                      'labels, top-down (after the pipeline)')]))
    full_width = max(part.shape[1] for part in parts)
    parts = [np.pad(part, ((0, 0), (0, full_width - part.shape[1]), (0, 0)),
                    constant_values=255) for part in parts]
    return np.concatenate(parts, axis=0)
