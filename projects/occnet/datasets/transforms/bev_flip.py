"""BEV-space mirror augmentation that keeps labels, flow and camera geometry consistent."""
import numpy as np
from mmcv.transforms import BaseTransform

from occnet.datasets.transforms.sample_rng import sample_rng
from occnet.registry import TRANSFORMS


def mirror_matrix(flip_x, flip_y):
    """(4, 4) mirror of the lidar frame: x -> -x and/or y -> -y (its own inverse)."""
    return np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0, 1.0, 1.0])


def flip_grid(grid, flip_x, flip_y):
    """Mirror an [x, y, ...] grid (e.g. (200, 200, 16) labels) along x and/or y. The grid is
    centred on the lidar origin, so voxel i along a flipped axis becomes voxel size - 1 - i."""
    if flip_x:
        grid = grid[::-1]
    if flip_y:
        grid = grid[:, ::-1]
    return np.ascontiguousarray(grid)


@TRANSFORMS.register_module()
class RandomFlipBEV(BaseTransform):
    """Mirror the scene in x (x -> -x) and/or y (y -> -y) of the lidar frame.

    The images stay as they are; what changes is where their pixels are in 3D: each
    `lidar2img` becomes lidar2img @ F with F = diag(+-1, +-1, 1, 1), so a mirrored point
    projects to the pixel of the original point. `voxel_semantics`, `mask_camera` and
    `voxel_flow` are mirrored (and the flow's vx / vy negated on a flipped axis), and so are
    the lidar `points` (N, C) (columns x and / or y negated: lidar2img @ F maps them to the
    pixels and depths of the original points). The draw uses `results['aug_seed']`, which
    OpenSceneOccDataset shares across a temporal queue, so every frame of a sample is
    mirrored alike; the dataset conjugates `cur2prev` by F, so the previous BEV is aligned
    right. `can_bus` stays as measured (global frame, not
    mirrored): align with `cur2prev` when this transform is on. Records `bev_flip` =
    (flip_x, flip_y).

    Args:
        flip_x_ratio, flip_y_ratio: probabilities of mirroring each axis.
    """

    def __init__(self, flip_x_ratio=0.5, flip_y_ratio=0.5):
        self.flip_x_ratio, self.flip_y_ratio = flip_x_ratio, flip_y_ratio

    def transform(self, results):
        rng = sample_rng(results, 'RandomFlipBEV')
        flip_x = bool(rng.random() < self.flip_x_ratio)
        flip_y = bool(rng.random() < self.flip_y_ratio)
        results['bev_flip'] = (flip_x, flip_y)
        if not (flip_x or flip_y):
            return results
        results['lidar2img'] = (np.asarray(results['lidar2img'], dtype=np.float64)
                                @ mirror_matrix(flip_x, flip_y))
        for key in ('voxel_semantics', 'mask_camera', 'voxel_flow'):
            if key in results:
                results[key] = flip_grid(results[key], flip_x, flip_y)
        if 'voxel_flow' in results:
            results['voxel_flow'] = results['voxel_flow'] * np.array(
                [-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0], dtype=np.float32)
        if 'points' in results:
            points = np.array(results['points'], copy=True)
            points[:, :2] *= np.array([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0],
                                      dtype=points.dtype)
            results['points'] = points
        return results
