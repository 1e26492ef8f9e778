"""Pixel-value augmentations of the camera images (geometry untouched)."""
import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from occnet.registry import TRANSFORMS

IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)  # a pixel of this value normalises to 0


def distort_photometric(img, rng, brightness_delta, contrast_range, saturation_range,
                        hue_delta):
    """One random colour distortion of an RGB uint8 (H, W, 3) image; each of brightness
    shift, contrast scale, saturation scale and hue shift (degrees) is applied with
    probability 0.5, contrast either first or last."""
    out = img.astype(np.float32)
    if rng.random() < 0.5:
        out += rng.uniform(-brightness_delta, brightness_delta)
    contrast_first = rng.random() < 0.5
    contrast = rng.uniform(*contrast_range) if rng.random() < 0.5 else None
    if contrast is not None and contrast_first:
        out *= contrast
    saturation = rng.uniform(*saturation_range) if rng.random() < 0.5 else None
    hue = rng.uniform(-hue_delta, hue_delta) if rng.random() < 0.5 else None
    if saturation is not None or hue is not None:
        hsv = cv2.cvtColor(np.clip(out, 0, 255), cv2.COLOR_RGB2HSV)  # H in [0, 360)
        if saturation is not None:
            hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 1)
        if hue is not None:
            hsv[..., 0] = (hsv[..., 0] + hue) % 360.0
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if contrast is not None and not contrast_first:
        out *= contrast
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@TRANSFORMS.register_module()
class PhotoMetricDistortionMultiViewImages(BaseTransform):
    """Independent random brightness / contrast / saturation / hue changes per camera
    (the baseline's training augmentation). Images stay uint8 RGB."""

    def __init__(self, brightness_delta=32, contrast_range=(0.5, 1.5),
                 saturation_range=(0.5, 1.5), hue_delta=18):
        self.params = dict(brightness_delta=brightness_delta, contrast_range=contrast_range,
                           saturation_range=saturation_range, hue_delta=hue_delta)

    def transform(self, results):
        rng = np.random.default_rng(np.random.randint(2**31))
        results['imgs'] = [distort_photometric(img, rng, **self.params)
                           for img in results['imgs']]
        return results


def grid_mask(height, width, period, keep_ratio, offset_y, offset_x):
    """(H, W) bool mask, True where GridMask hides a pixel: squares of side
    period - keep, repeating every `period` pixels in both directions, where keep =
    round(period * keep_ratio) clipped to [1, period - 1] is the width of the visible stripes
    between them; the grid is shifted by (offset_y, offset_x) pixels."""
    keep = min(max(int(period * keep_ratio + 0.5), 1), period - 1)
    rows = (np.arange(height) - offset_y) % period >= keep
    cols = (np.arange(width) - offset_x) % period >= keep
    return rows[:, None] & cols[None, :]


@TRANSFORMS.register_module()
class GridMaskMultiViewImages(BaseTransform):
    """GridMask (Chen et al., 2020) on each camera with probability `prob`: a regular grid of
    squares is set to `fill` (default the ImageNet mean, which normalises to 0, as when the
    baseline masks normalised images). The period is drawn from [min_period, image height),
    the visible stripes are `keep_ratio` of it, the offset is random."""

    def __init__(self, prob=0.7, keep_ratio=0.5, min_period=2, fill=IMAGENET_MEAN_RGB):
        self.prob, self.keep_ratio, self.min_period = prob, keep_ratio, min_period
        self.fill = np.asarray(fill, dtype=np.float64).round().astype(np.uint8)

    def transform(self, results):
        imgs = []
        for img in results['imgs']:
            height, width = img.shape[:2]
            if np.random.random() < self.prob and height > self.min_period:
                period = np.random.randint(self.min_period, height)
                mask = grid_mask(height, width, period, self.keep_ratio,
                                 np.random.randint(period), np.random.randint(period))
                img = img.copy()
                img[mask] = self.fill
            imgs.append(img)
        results['imgs'] = imgs
        return results
