"""Loading the 8 camera images, their projections, and the occupancy labels of a frame."""
import os

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from occnet.constants import CAMERA_NAMES
from occnet.datasets.frame_checks import CALIB_KEYS
from occnet.datasets.infos import VERIFY_HINT, DataError, MissingFileError
from occnet.datasets.labels import load_flow, load_occupancy, load_visible_mask
from occnet.geometry import lidar2img_matrix, sparse_to_dense
from occnet.registry import TRANSFORMS

JPEG_SOI, JPEG_EOI = b'\xff\xd8', b'\xff\xd9'
JPEG_TAIL_BYTES = 64  # the end-of-image marker may be followed by padding


def read_jpeg(path, token, cam):
    """RGB uint8 (H, W, 3) of a camera image; a missing, truncated (no JPEG end marker) or
    undecodable file raises DataError naming the file, the frame token and the camera."""
    if not os.path.isfile(path):
        raise MissingFileError(f'missing image {path} for frame token {token} ({cam}); '
                               f'{VERIFY_HINT}')
    data = np.fromfile(path, dtype=np.uint8)
    img = None
    if data[:2].tobytes() == JPEG_SOI and JPEG_EOI in data[-JPEG_TAIL_BYTES:].tobytes():
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f'corrupt image {path} for frame token {token} ({cam}): not a whole '
                        f'JPEG ({len(data)} bytes; truncated download?); {VERIFY_HINT}')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@TRANSFORMS.register_module()
class LoadMultiViewImages(BaseTransform):
    """Decode the cameras of a frame in the fixed order (constants.CAMERA_NAMES).

    Reads `results['img_paths']` (N,) and the stacked calibration `sensor2lidar_rotation`
    (N, 3, 3), `sensor2lidar_translation` (N, 3), `cam_intrinsic` (N, 3, 3); adds `imgs` (list
    of N uint8 (H, W, 3) RGB arrays), `lidar2img` (N, 4, 4) float64 for the original pixels,
    `img_shape` and `ori_shape` (H, W).
    """

    def transform(self, results):
        imgs = [read_jpeg(path, results['token'], cam)
                for cam, path in zip(CAMERA_NAMES, results['img_paths'])]
        if len({im.shape for im in imgs}) != 1:
            raise DataError(f'cameras of frame {results["token"]} have different sizes '
                            f'{[im.shape for im in imgs]}')
        results['imgs'] = imgs
        results['lidar2img'] = np.stack([
            lidar2img_matrix({key: results[key][n] for key in CALIB_KEYS})
            for n in range(len(CAMERA_NAMES))])
        results['img_shape'] = results['ori_shape'] = imgs[0].shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadOccupancyLabel(BaseTransform):
    """Sparse OpenScene labels -> dense (200, 200, 16) uint8 `voxel_semantics`, free = 11.

    Reads `occ_gt_final_path` ((M, 2) [index1d, class]); when present and `with_invalid`,
    `occ_invalid_path` (1-D index1d of voxels no camera sees) into `mask_camera` (X, Y, Z)
    bool (True = visible); with `with_flow`, `flow_gt_final_path` ((M, 2) vx, vy m/s, rows
    aligned with the occupancy file) into `voxel_flow` (X, Y, Z, 2) float32, 0 where free.
    Frames whose `with_label` is False (history frames of a temporal queue) pass through.
    """

    def __init__(self, with_invalid=True, with_flow=False):
        self.with_invalid = with_invalid
        self.with_flow = with_flow

    def transform(self, results):
        if not results.get('with_label', True):
            return results
        token, path = results['token'], results.get('occ_gt_final_path')
        if path is None:
            raise DataError(f'frame {token} has no occupancy label; collect the infos with '
                            f'tools/collect_data.py, which keeps unlabelled frames out')
        occ_sparse = load_occupancy(path, token, dense=False)
        results['voxel_semantics'] = sparse_to_dense(occ_sparse)
        invalid_path = results.get('occ_invalid_path')
        if self.with_invalid and invalid_path is not None:
            results['mask_camera'] = load_visible_mask(invalid_path, token)
        if self.with_flow:
            flow_path = results.get('flow_gt_final_path')
            if flow_path is None:
                raise DataError(f'frame {token} has no flow label path (flow_gt_final_path); '
                                f'with_flow=True needs the v1.0 flow files')
            results['voxel_flow'] = load_flow(flow_path, token, occ_sparse)
        return results
