"""Sparse per-camera depth targets from the frame's LiDAR points, for depth supervision."""
import numpy as np
from mmcv.transforms import BaseTransform

from occnet.datasets.transforms.image import padded_shape
from occnet.descriptions import get_description
from occnet.geometry import points_to_voxel_indices, project_points
from occnet.registry import TRANSFORMS


def nearest_returns(points, lidar2img, map_shape, stride, min_depth=0.1, max_depth=np.inf,
                    image_hw=None):
    """The nearest LiDAR return of every cell of each camera's depth grid that has one.

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
        (cells (M,) int64 flat indices into (N, H_d, W_d), point (M,) int64 row of `points`,
        depth (M,) float32 metres along the camera axis), one entry per cell with a return.
    """
    rows, cols = map_shape
    cells, index, depths = [], [], []
    xyz = np.asarray(points)[:, :3]
    for cam in range(len(lidar2img) if len(xyz) else 0):
        uv, depth = project_points(xyz, np.asarray(lidar2img[cam], dtype=np.float64))
        col, row = np.floor(uv[:, 0] / stride), np.floor(uv[:, 1] / stride)
        valid = ((depth >= min_depth) & (depth <= max_depth) & (col >= 0) & (col < cols)
                 & (row >= 0) & (row < rows))
        if image_hw is not None:
            valid &= (uv[:, 0] < image_hw[1]) & (uv[:, 1] < image_hw[0])
        cells.append((cam * rows + row[valid].astype(np.int64)) * cols
                     + col[valid].astype(np.int64))
        index.append(np.flatnonzero(valid))
        depths.append(depth[valid].astype(np.float32))
    if not cells:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    cell, point, nearest = np.concatenate(cells), np.concatenate(index), np.concatenate(depths)
    order = np.lexsort((nearest, cell))  # by cell, nearest first within a cell
    first = np.ones(len(order), dtype=bool)
    first[1:] = cell[order][1:] != cell[order][:-1]
    keep = order[first]
    return cell[keep], point[keep], nearest[keep]


def _fill(num_cams, map_shape, cells, values, background, dtype):
    out = np.full((num_cams, *map_shape), background, dtype=dtype)
    out.reshape(-1)[cells] = values
    return out


def depth_maps(points, lidar2img, map_shape, stride, min_depth=0.1, max_depth=np.inf,
               image_hw=None):
    """Nearest LiDAR return per cell of each camera's depth grid (arguments as
    `nearest_returns`).

    Returns:
        float32 (N, H_d, W_d): the smallest depth (metres, along the camera axis) of the
        points that project into each cell, 0 where none does.
    """
    cell, _, depth = nearest_returns(points, lidar2img, map_shape, stride, min_depth,
                                     max_depth, image_hw)
    return _fill(len(lidar2img), map_shape, cell, depth, 0, np.float32)


def _voxel_labels(xyz, voxel_semantics, description):
    voxel, inside = points_to_voxel_indices(
        xyz, grid_shape=description.grid_shape, pc_range=description.point_cloud_range,
        voxel_size=description.voxel_size)
    label = np.full(len(voxel), description.ignore_index, dtype=np.uint8)
    label[inside] = np.asarray(voxel_semantics)[tuple(voxel[inside].T)]
    label[label == description.free_index] = description.ignore_index
    return label


def point_labels(points, voxel_semantics, description, origin=(0.0, 0.0, 0.0)):
    """uint8 (P,) label of the surface each LiDAR return hit: 0..free_index - 1, and
    `description.ignore_index` for a return outside the grid or with only free or ignored
    voxels around it (a pixel sees a surface, never free space).

    A return lies on the surface it hit, and a surface often lies on a voxel face (a flat
    road at a voxel boundary): the free voxel in front of it holds the point. So the label
    is read a quarter voxel further along the return's ray from `origin`, inside the
    surface, and at the point itself where that is free or off the grid.

    Args:
        points: (P, >=3) metres in the grid's frame (`LoadPoints` puts them there).
        voxel_semantics: (X, Y, Z) uint8 labels of `description`'s grid.
        description: OccDescription (grid range, voxel size, free and ignore labels).
        origin: (3,) the rays' origin in the grid's frame (OpenScene: the lidar, 0).
    """
    xyz = np.asarray(points, dtype=np.float64)[:, :3]
    ray = xyz - np.asarray(origin, dtype=np.float64)
    ray /= np.maximum(np.linalg.norm(ray, axis=1, keepdims=True), 1e-9)
    label = _voxel_labels(xyz + 0.25 * description.voxel_size * ray, voxel_semantics,
                          description)
    at_point = _voxel_labels(xyz, voxel_semantics, description)
    return np.where(label == description.ignore_index, at_point, label)


def semantic_maps(points, voxel_semantics, lidar2img, map_shape, stride, description,
                  min_depth=0.1, max_depth=np.inf, image_hw=None):
    """Label of the voxel that holds each cell's nearest LiDAR return (`point_labels`): the
    sparse image labels of a joint depth-semantic pretraining, from the occupancy label.
    Arguments as `nearest_returns` and `point_labels`.

    Returns:
        uint8 (N, H_d, W_d), `description.ignore_index` where the cell has no return or its
        nearest return has no label.
    """
    cell, point, _ = nearest_returns(points, lidar2img, map_shape, stride, min_depth,
                                     max_depth, image_hw)
    labels = point_labels(np.asarray(points)[point], voxel_semantics, description)
    return _fill(len(lidar2img), map_shape, cell, labels, description.ignore_index, np.uint8)


@TRANSFORMS.register_module()
class DepthMapsFromPoints(BaseTransform):
    """`results['depth_maps']` float32 (N, H_d, W_d): each camera's sparse depth target at
    the depth network's stride, from `results['points']` (LoadPoints) projected through
    the final `lidar2img`. Put it after every transform that moves pixels or points (decode
    scale, resizes, RandomFlipBEV, padding); the grid covers the padded image, as the
    network sees it: `pad_shape` when a pad transform set it, else `img_shape` padded to
    `pad_size_divisor` (keep it equal to the model's data_preprocessor). Returns that land
    in the padding are no targets.

    With `with_semantics`, also `results['semantic_maps']` uint8 (N, H_d, W_d): the
    occupancy label of the voxel holding each cell's nearest return (`semantic_maps`),
    the dataset's ignore label where there is none; it needs `voxel_semantics`
    (LoadOccupancyLabel before it). These are the image labels of a joint depth-semantic
    pretraining (`ImageSemanticHead`).

    Args:
        stride: pixels per depth cell (the depth network's feature stride, e.g. 16).
        min_depth, max_depth: metres; returns nearer or farther are not targets (set them to
            the depth bins' range).
        pad_size_divisor: see above.
        with_semantics: also write `semantic_maps`.
        dataset: name, OccDescription or metainfo dict of the labels' grid and classes.
    """

    def __init__(self, stride=16, min_depth=1.0, max_depth=45.0, pad_size_divisor=32,
                 with_semantics=False, dataset='openscene'):
        self.stride, self.pad_size_divisor = stride, pad_size_divisor
        self.min_depth, self.max_depth = min_depth, max_depth
        self.with_semantics = with_semantics
        self.description = get_description(dataset)

    def transform(self, results):
        token = results.get('token')
        if 'points' not in results:
            raise KeyError(f"DepthMapsFromPoints: frame {token} has no "
                           "'points'; put dict(type='LoadPoints') before it in the pipeline")
        if self.with_semantics and 'voxel_semantics' not in results:
            raise KeyError(f"DepthMapsFromPoints(with_semantics=True): frame {token} has no "
                           "'voxel_semantics'; put dict(type='LoadOccupancyLabel') before it "
                           'in the pipeline')
        pad_h, pad_w = results.get('pad_shape') or padded_shape(results['img_shape'],
                                                                self.pad_size_divisor)
        shape = (-(-pad_h // self.stride), -(-pad_w // self.stride))
        num_cams, points = len(results['lidar2img']), results['points']
        cell, point, depth = nearest_returns(points, results['lidar2img'], shape, self.stride,
                                             self.min_depth, self.max_depth,
                                             image_hw=results['img_shape'][:2])
        results['depth_maps'] = _fill(num_cams, shape, cell, depth, 0, np.float32)
        if self.with_semantics:
            to_grid = results.get('lidar_to_grid')  # Occ3D: the lidar sits off the origin
            origin = (0.0, 0.0, 0.0) if to_grid is None else np.asarray(to_grid)[:3, 3]
            labels = point_labels(np.asarray(points)[point], results['voxel_semantics'],
                                  self.description, origin)
            results['semantic_maps'] = _fill(num_cams, shape, cell, labels,
                                             self.description.ignore_index, np.uint8)
        return results
