"""Sparse per-camera depth targets from the frame's LiDAR points, for depth supervision."""
import numpy as np
from mmcv.transforms import BaseTransform

from occnet.datasets.transforms.image import padded_shape
from occnet.geometry import project_points
from occnet.registry import TRANSFORMS


def depth_maps(points, lidar2img, map_shape, stride, min_depth=0.1, max_depth=np.inf,
               image_hw=None):
    """Nearest LiDAR return per cell of each camera's depth grid.

    Args:
        points: (P, >=3) x y z in the lidar frame, metres.
        lidar2img: (N, 4, 4) lidar -> pixel projections of the network's input images
            (row 2 gives the camera-frame depth).
        map_shape: (H_d, W_d) cells per camera; cell (i, j) covers pixels
            [j * stride, (j + 1) * stride) x [i * stride, (i + 1) * stride).
        stride: pixels per cell.
        min_depth, max_depth: metres; returns outside are dropped.
        image_hw: (H, W) of the unpadded image; returns that project into the padding are
            dropped (default: keep every return inside the map).
    Returns:
        float32 (N, H_d, W_d): the smallest depth (metres, along the camera axis) of the
        points that project into each cell, 0 where none does.
    """
    num_cams = len(lidar2img)
    rows, cols = map_shape
    out = np.zeros((num_cams, rows, cols), dtype=np.float32)
    if len(points) == 0:
        return out
    cells, depths = [], []
    for cam in range(num_cams):
        uv, depth = project_points(np.asarray(points)[:, :3],
                                   np.asarray(lidar2img[cam], dtype=np.float64))
        col, row = np.floor(uv[:, 0] / stride), np.floor(uv[:, 1] / stride)
        valid = ((depth >= min_depth) & (depth <= max_depth) & (col >= 0) & (col < cols)
                 & (row >= 0) & (row < rows))
        if image_hw is not None:
            valid &= (uv[:, 0] < image_hw[1]) & (uv[:, 1] < image_hw[0])
        cells.append((cam * rows + row[valid].astype(np.int64)) * cols
                     + col[valid].astype(np.int64))
        depths.append(depth[valid])
    cell, nearest = np.concatenate(cells), np.concatenate(depths)
    order = np.lexsort((nearest, cell))  # by cell, nearest first within a cell
    first = np.ones(len(order), dtype=bool)
    first[1:] = cell[order][1:] != cell[order][:-1]
    out.reshape(-1)[cell[order][first]] = nearest[order][first]
    return out


@TRANSFORMS.register_module()
class DepthMapsFromPoints(BaseTransform):
    """`results['depth_maps']` float32 (N, H_d, W_d): each camera's sparse depth target at
    the depth network's stride, from `results['points']` (LoadPoints) projected through
    the final `lidar2img`. Put it after every transform that moves pixels or points (decode
    scale, resizes, RandomFlipBEV, padding); the grid covers the padded image, as the
    network sees it: `pad_shape` when a pad transform set it, else `img_shape` padded to
    `pad_size_divisor` (keep it equal to the model's data_preprocessor). Returns that land
    in the padding are no targets.

    Args:
        stride: pixels per depth cell (the depth network's feature stride, e.g. 16).
        min_depth, max_depth: metres; returns nearer or farther are not targets (set them to
            the depth bins' range).
        pad_size_divisor: see above.
    """

    def __init__(self, stride=16, min_depth=1.0, max_depth=45.0, pad_size_divisor=32):
        self.stride, self.pad_size_divisor = stride, pad_size_divisor
        self.min_depth, self.max_depth = min_depth, max_depth

    def transform(self, results):
        if 'points' not in results:
            raise KeyError(f"DepthMapsFromPoints: frame {results.get('token')} has no "
                           "'points'; put dict(type='LoadPoints') before it in the pipeline")
        pad_h, pad_w = results.get('pad_shape') or padded_shape(results['img_shape'],
                                                                self.pad_size_divisor)
        shape = (-(-pad_h // self.stride), -(-pad_w // self.stride))
        results['depth_maps'] = depth_maps(results['points'], results['lidar2img'], shape,
                                           self.stride, self.min_depth, self.max_depth,
                                           image_hw=results['img_shape'][:2])
        return results
