"""Geometric image transforms that keep `lidar2img` consistent with the pixels."""
import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from occnet.datasets.transforms.sample_rng import sample_rng
from occnet.registry import TRANSFORMS

INTERPOLATIONS = {'area': cv2.INTER_AREA, 'bilinear': cv2.INTER_LINEAR}


def resize_views(results, new_w, new_h, interpolation=cv2.INTER_AREA):
    """Resize every camera image of `results` to (new_w, new_h) pixels and scale the first two
    rows of each `lidar2img` (pixel u' = sx * u, v' = sy * v)."""
    height, width = results['img_shape']
    sx, sy = new_w / width, new_h / height
    results['imgs'] = [cv2.resize(img, (new_w, new_h), interpolation=interpolation)
                       for img in results['imgs']]
    lidar2img = np.array(results['lidar2img'], dtype=np.float64, copy=True)
    lidar2img[:, 0] *= sx
    lidar2img[:, 1] *= sy
    results['lidar2img'] = lidar2img
    results['img_shape'] = (new_h, new_w)
    return results


@TRANSFORMS.register_module()
class ResizeMultiViewImages(BaseTransform):
    """Resize every camera image by `scale` (or to `size` = (W, H)), keeping lidar2img right."""

    def __init__(self, scale=None, size=None, interpolation='area'):
        if (scale is None) == (size is None):
            raise ValueError('ResizeMultiViewImages needs exactly one of scale or size')
        self.scale, self.size = scale, size
        self.interpolation = INTERPOLATIONS[interpolation]

    def transform(self, results):
        height, width = results['img_shape']
        if self.size is not None:
            new_w, new_h = self.size
        else:
            new_w, new_h = int(round(width * self.scale)), int(round(height * self.scale))
        return resize_views(results, new_w, new_h, self.interpolation)


@TRANSFORMS.register_module()
class RandomScaleMultiViewImages(BaseTransform):
    """Resize all cameras by one factor drawn from `scales` (training augmentation;
    lidar2img follows the pixels). The draw is shared by the frames of a temporal queue
    (sample_rng), so their images keep one size."""

    def __init__(self, scales=(0.4, 0.5, 0.6), interpolation='bilinear'):
        self.scales = tuple(scales)
        self.interpolation = INTERPOLATIONS[interpolation]

    def transform(self, results):
        scale = self.scales[sample_rng(results, 'RandomScaleMultiViewImages').integers(
            len(self.scales))]
        height, width = results['img_shape']
        results['img_scale_factor'] = scale
        return resize_views(results, int(round(width * scale)), int(round(height * scale)),
                            self.interpolation)


def padded_shape(img_shape, size_divisor):
    """(H, W) of an image of `img_shape` padded at the bottom and right to a multiple of
    `size_divisor`, as PadMultiViewImages and OccDataPreprocessor pad it."""
    height, width = img_shape[:2]
    return (-(-height // size_divisor) * size_divisor, -(-width // size_divisor) * size_divisor)


@TRANSFORMS.register_module()
class PadMultiViewImages(BaseTransform):
    """Pad every camera image at the bottom and right to a multiple of `size_divisor` (or to
    `size` = (W, H)); pixels keep their coordinates, so lidar2img is unchanged. Records
    `pad_shape` (H, W) and keeps `img_shape` as the unpadded size."""

    def __init__(self, size_divisor=32, size=None, pad_val=0):
        self.size_divisor, self.size, self.pad_val = size_divisor, size, pad_val

    def transform(self, results):
        height, width = results['imgs'][0].shape[:2]
        if self.size is not None:
            pad_w, pad_h = self.size
        else:
            pad_h, pad_w = padded_shape((height, width), self.size_divisor)
        if pad_w < width or pad_h < height:
            raise ValueError(f'PadMultiViewImages size {(pad_w, pad_h)} is smaller than the '
                             f'images {(width, height)}')
        results['imgs'] = [np.pad(img, ((0, pad_h - height), (0, pad_w - width), (0, 0)),
                                  constant_values=self.pad_val) for img in results['imgs']]
        results['pad_shape'] = (pad_h, pad_w)
        return results
