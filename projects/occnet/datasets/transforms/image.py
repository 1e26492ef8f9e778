"""Geometric image transforms that keep `lidar2img` consistent with the pixels."""
import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from occnet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ResizeMultiViewImages(BaseTransform):
    """Resize every camera image by `scale` (or to `size` = (W, H)) and scale the first two
    rows of each `lidar2img` accordingly (pixel u' = sx * u, v' = sy * v)."""

    def __init__(self, scale=None, size=None, interpolation='area'):
        if (scale is None) == (size is None):
            raise ValueError('ResizeMultiViewImages needs exactly one of scale or size')
        self.scale, self.size = scale, size
        self.interpolation = {'area': cv2.INTER_AREA, 'bilinear': cv2.INTER_LINEAR}[
            interpolation]

    def transform(self, results):
        height, width = results['img_shape']
        if self.size is not None:
            new_w, new_h = self.size
        else:
            new_w, new_h = int(round(width * self.scale)), int(round(height * self.scale))
        sx, sy = new_w / width, new_h / height
        results['imgs'] = [cv2.resize(img, (new_w, new_h), interpolation=self.interpolation)
                           for img in results['imgs']]
        lidar2img = np.array(results['lidar2img'], dtype=np.float64, copy=True)
        lidar2img[:, 0] *= sx
        lidar2img[:, 1] *= sy
        results['lidar2img'] = lidar2img
        results['img_shape'] = (new_h, new_w)
        return results
