"""Loading the camera images, their projections, the lidar points and the occupancy labels
of a frame (cameras, grid and labels of a dataset description, occnet/descriptions.py)."""
import logging
import os

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from occnet.datasets.frame_checks import CALIB_KEYS
from occnet.datasets.infos import VERIFY_HINT, DataError, MissingFileError
from occnet.datasets.labels import load_flow, load_occupancy, load_visible_mask
from occnet.datasets.pointcloud import read_points
from occnet.descriptions import get_description
from occnet.geometry import lidar2img_matrix, sparse_to_dense
from occnet.registry import TRANSFORMS

JPEG_SOI, JPEG_EOI = b'\xff\xd8', b'\xff\xd9'
JPEG_TAIL_BYTES = 64  # the end-of-image marker may be followed by padding


# libjpeg decodes straight to 1/2, 1/4 or 1/8 of the size (DCT scaling), much faster than a
# full decode followed by a resize
REDUCED_DECODE_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                        4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def read_jpeg(path, token, cam, reduce=1):
    """RGB uint8 (H, W, 3) of a camera image, decoded at 1/`reduce` of its size (1, 2, 4 or
    8; the size rounds up); a missing, truncated (no JPEG end marker) or undecodable file
    raises DataError naming the file, the frame token and the camera."""
    if not os.path.isfile(path):
        raise MissingFileError(f'missing image {path} for frame token {token} ({cam}); '
                               f'{VERIFY_HINT}')
    data = np.fromfile(path, dtype=np.uint8)
    img = None
    if data[:2].tobytes() == JPEG_SOI and JPEG_EOI in data[-JPEG_TAIL_BYTES:].tobytes():
        img = cv2.imdecode(data, REDUCED_DECODE_FLAGS[reduce])
    if img is None:
        raise DataError(f'corrupt image {path} for frame token {token} ({cam}): not a whole '
                        f'JPEG ({len(data)} bytes; truncated download?); {VERIFY_HINT}')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@TRANSFORMS.register_module()
class LoadMultiViewImages(BaseTransform):
    """Decode the cameras of a frame in the dataset's fixed order (`camera_names` of its
    description; OpenScene's 8 cameras by default).

    Reads `results['img_paths']` (N,) (one per camera, in that order) and the stacked
    calibration `sensor2lidar_rotation` (N, 3, 3), `sensor2lidar_translation` (N, 3),
    `cam_intrinsic` (N, 3, 3); adds `imgs` (list of N uint8 (H, W, 3) RGB arrays),
    `lidar2img` (N, 4, 4) float64 for the decoded pixels, `img_shape` (H, W) as decoded and
    `ori_shape` (H, W) = decoded size / decode_scale (the files' size, rounded up to a
    multiple of 1 / decode_scale). A frame with a number of paths other than N raises
    DataError.

    Args:
        decode_scale: 1, 0.5, 0.25 or 0.125. Below 1 the JPEGs are decoded directly at that
            scale (DCT scaling in libjpeg), which replaces a following
            `ResizeMultiViewImages(scale=...)` at a fraction of its cost (1920x1080 -> 960x540:
            see docs/benchmarks.md); lidar2img is scaled to match. The pixels equal a full
            decode plus an area resize up to rounding (mean 0.15 grey levels on 1080p frames).
        dataset: a name, an OccDescription or a metainfo dict; gives the camera order.
    """

    def __init__(self, decode_scale=1, dataset='openscene'):
        reduce = round(1 / decode_scale) if decode_scale > 0 else 0
        if reduce not in REDUCED_DECODE_FLAGS or abs(reduce * decode_scale - 1) > 1e-9:
            raise ValueError(f'LoadMultiViewImages decode_scale must be 1, 0.5, 0.25 or '
                             f'0.125, got {decode_scale}; resize to other scales with '
                             'ResizeMultiViewImages')
        self.reduce = reduce
        self.camera_names = get_description(dataset).camera_names

    def transform(self, results):
        paths = results['img_paths']
        if len(paths) != len(self.camera_names):
            raise DataError(f'frame {results["token"]} has {len(paths)} image paths, the '
                            f'dataset has {len(self.camera_names)} cameras '
                            f'{list(self.camera_names)}: give LoadMultiViewImages the '
                            'dataset of the config (dataset=...)')
        imgs = [read_jpeg(path, results['token'], cam, self.reduce)
                for cam, path in zip(self.camera_names, paths)]
        if len({im.shape for im in imgs}) != 1:
            raise DataError(f'cameras of frame {results["token"]} have different sizes '
                            f'{[im.shape for im in imgs]}')
        results['imgs'] = imgs
        lidar2img = np.stack([
            lidar2img_matrix({key: results[key][n] for key in CALIB_KEYS})
            for n in range(len(self.camera_names))])
        lidar2img[:, :2] /= self.reduce  # pixel u' = u / reduce, v' = v / reduce
        results['lidar2img'] = lidar2img
        results['img_shape'] = imgs[0].shape[:2]
        results['ori_shape'] = tuple(side * self.reduce for side in imgs[0].shape[:2])
        return results


@TRANSFORMS.register_module()
class LoadOccupancyLabel(BaseTransform):
    """Sparse labels (OpenScene's format) -> dense (X, Y, Z) = grid_shape uint8
    `voxel_semantics` filled with free_index (OpenScene: (200, 200, 16), free = 11).

    Reads `occ_gt_final_path` ((M, 2) [index1d, class]); when present and `with_invalid`,
    `occ_invalid_path` (1-D index1d of voxels no camera sees) into `mask_camera` (X, Y, Z)
    bool (True = visible); with `with_flow`, `flow_gt_final_path` ((M, 2) vx, vy m/s, rows
    aligned with the occupancy file) into `voxel_flow` (X, Y, Z, 2) float32, 0 where free.
    Frames whose `with_label` is False (history frames of a temporal queue) pass through.
    Grid shape and label range are those of `dataset` (a name, an OccDescription or a
    metainfo dict).
    """

    def __init__(self, with_invalid=True, with_flow=False, dataset='openscene'):
        self.with_invalid = with_invalid
        self.with_flow = with_flow
        self.description = get_description(dataset)

    def transform(self, results):
        if not results.get('with_label', True):
            return results
        token, path = results['token'], results.get('occ_gt_final_path')
        if path is None:
            raise DataError(f'frame {token} has no occupancy label; collect the infos with '
                            f'tools/collect_data.py, which keeps unlabelled frames out')
        desc = self.description
        occ_sparse = load_occupancy(path, token, dense=False, dataset=desc)
        results['voxel_semantics'] = sparse_to_dense(occ_sparse, grid_shape=desc.grid_shape,
                                                     free_index=desc.free_index)
        invalid_path = results.get('occ_invalid_path')
        if self.with_invalid and invalid_path is not None:
            results['mask_camera'] = load_visible_mask(invalid_path, token, dataset=desc)
        if self.with_flow:
            flow_path = results.get('flow_gt_final_path')
            if flow_path is None:
                raise DataError(f'frame {token} has no flow label path (flow_gt_final_path); '
                                f'with_flow=True needs the v1.0 flow files')
            results['voxel_flow'] = load_flow(flow_path, token, occ_sparse, dataset=desc)
        return results


@TRANSFORMS.register_module()
class LoadPoints(BaseTransform):
    """The frame's merged lidar sweep (datasets/pointcloud.py) into `points`.

    Reads `results['lidar_path']` (OpenSceneOccDataset resolves it against data_root): a PCD
    file (OpenScene) or a nuScenes `.pcd.bin` (x y z intensity ring, float32); adds
    `points` float32 (N, len(use_dims)) in the lidar frame, metres; in the grid frame when
    the frame carries `lidar_to_grid` (4, 4) (Occ3DNuScenesDataset: lidar -> ego)
    (pointcloud.point_fields names a file's columns).

    Args:
        use_dims: columns of the file to keep, starting with 0, 1, 2 (x y z); the file's
            columns are x y z, then its other fields in file order (release: x y z intensity
            ring lidar_info).
        skip_missing: a frame whose metadata names no point cloud gets an empty (0, D) array
            instead of an error; such frames are counted and logged (the first, then every
            `log_every`-th). A named file that is missing or corrupt always raises.
        log_every: how often skip_missing logs its running count.
    """

    def __init__(self, use_dims=(0, 1, 2), skip_missing=False, log_every=100):
        use_dims = tuple(use_dims)
        if use_dims[:3] != (0, 1, 2) or not all(isinstance(d, int) and d >= 0
                                                 for d in use_dims):
            raise ValueError(f'LoadPoints use_dims must start with 0, 1, 2 (x y z, which '
                             f'geometry transforms expect first) followed by other column '
                             f'indices, got {use_dims} (release columns: 0 x, 1 y, 2 z, '
                             f'3 intensity, 4 ring, 5 lidar_info)')
        self.use_dims = use_dims
        self.skip_missing = skip_missing
        self.log_every = max(1, int(log_every))
        self.num_missing = 0

    def transform(self, results):
        token, path = results.get('token'), results.get('lidar_path')
        if path is None:
            return self._no_lidar(results, token)
        points, fields = read_points(path, token)
        if max(self.use_dims) >= points.shape[1]:
            raise DataError(f'point cloud {path} (frame {token}) has {points.shape[1]} columns '
                            f'({" ".join(fields)}); LoadPoints use_dims={self.use_dims} asks '
                            f'for column {max(self.use_dims)}: fix use_dims in the config')
        points = np.ascontiguousarray(points[:, self.use_dims])
        to_grid = results.get('lidar_to_grid')  # Occ3D: the grid lives in the ego frame
        if to_grid is not None:
            to_grid = np.asarray(to_grid, dtype=np.float64)
            points[:, :3] = points[:, :3] @ to_grid[:3, :3].T.astype(np.float32) + \
                to_grid[:3, 3].astype(np.float32)
        results['points'] = points
        return results

    def _no_lidar(self, results, token):
        if not self.skip_missing:
            raise DataError(f'frame {token} names no point cloud (lidar_path is None): collect '
                            f'the infos again with tools/collect_data.py, which keeps each '
                            f"frame's lidar_path (infos written before it did dropped it), or "
                            f'the data has no lidar; LoadPoints(skip_missing=True) gives such '
                            f'frames no points')
        self.num_missing += 1
        if self.num_missing == 1 or self.num_missing % self.log_every == 0:
            print_log(f'LoadPoints: frame {token} names no point cloud; it gets no points '
                      f'({self.num_missing} such frames in this process so far, logged every '
                      f'{self.log_every}; re-collect the infos to keep lidar_path)',
                      logger='current', level=logging.WARNING)
        results['points'] = np.zeros((0, len(self.use_dims)), dtype=np.float32)
        return results
