"""A sequence of RGB renders written as an animated GIF or an MP4 video."""
import os

import cv2
import numpy as np
from PIL import Image

FORMATS = ('.gif', '.mp4')


def write_animation(frames, path, fps=4.0):
    """Write frames as an animation; the format follows the extension of `path`.

    Args:
        frames: sequence of (H, W, 3) uint8 RGB images, all the same size.
        path: `.gif` (looping, adaptive 256-colour palette per frame) or `.mp4` (MPEG-4 part 2,
            plays in browsers and VLC); folders are created.
        fps: frames per second.
    Returns:
        the path.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise ValueError(f'animation {path}: the name must end in .gif or .mp4')
    frames = [np.asarray(frame) for frame in frames]
    if not frames:
        raise ValueError(f'animation {path}: no frames to write')
    shapes = {frame.shape for frame in frames}
    if len(shapes) != 1 or frames[0].ndim != 3 or frames[0].shape[2] != 3:
        raise ValueError(f'animation {path}: frames must share one (H, W, 3) shape, got '
                         f'{sorted(shapes)}')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if extension == '.gif':
        images = [Image.fromarray(frame.astype(np.uint8)).quantize(
            256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], loop=0,
                       duration=int(round(1000.0 / fps)), optimize=True)
        return path
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (width + width % 2, height + height % 2))
    if not writer.isOpened():
        raise OSError(f'could not open {path} for MP4 writing (OpenCV has no mp4v encoder '
                      'here); write a .gif instead')
    try:
        for frame in frames:
            padded = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode='edge')
            writer.write(np.ascontiguousarray(padded[..., ::-1].astype(np.uint8)))
    finally:
        writer.release()
    return path
