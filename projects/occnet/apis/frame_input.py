"""A user's frame (images and projections) through the image side of a config's test pipeline.

The dataset's pipeline starts with LoadMultiViewImages, which reads the JPEGs an infos file
names and builds lidar2img from the calibration; here the images and lidar2img come from the
caller instead. The transforms after it run as the config lists them (ResizeMultiViewImages,
PadMultiViewImages, PackOccInputs, ...), built from occnet's registry, except those that read
ground truth or lidar points (`GROUND_TRUTH_TRANSFORMS`).
"""
import os

import cv2
import numpy as np
from mmengine.registry import DefaultScope

from occnet.datasets.collect import pose_matrices
from occnet.datasets.infos import DataError, resolve
from occnet.datasets.readers import grid2img_matrices
from occnet.datasets.transforms.loading import JPEG_SOI, LoadMultiViewImages, read_jpeg
from occnet.descriptions import get_description
from occnet.registry import TRANSFORMS

# test-pipeline transforms that load labels or lidar points: inference has neither
GROUND_TRUTH_TRANSFORMS = ('LoadOccupancyLabel', 'LoadOcc3DLabel', 'LoadPoints',
                           'DepthMapsFromPoints')


def _type_name(transform_cfg):
    kind = transform_cfg['type']
    return kind if isinstance(kind, str) else kind.__name__


def inference_dataset_cfg(cfg):
    """The config's test (else val) dataset dict; a config without one raises KeyError."""
    for loader in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset')
        if dataset is not None:
            return dataset
    raise KeyError('the config has no test_dataloader.dataset (nor val_dataloader.dataset): '
                   'inference_occ takes the test pipeline and the dataset from it')


class ImagePipeline:
    """The image side of a config's test pipeline, for frames given as images + lidar2img.

    Args:
        pipeline: the config's test pipeline (list of transform dicts); its first transform
            must be LoadMultiViewImages, whose `decode_scale` and camera order apply here.
        scope: registry scope the transforms are built in ('occnet').
    """

    def __init__(self, pipeline, scope='occnet'):
        pipeline = list(pipeline)
        with DefaultScope.overwrite_default_scope(scope):
            loader = TRANSFORMS.build(pipeline[0]) if pipeline else None
            self.transforms = [TRANSFORMS.build(t) for t in pipeline[1:]
                               if _type_name(t) not in GROUND_TRUTH_TRANSFORMS]
        if not isinstance(loader, LoadMultiViewImages):
            raise ValueError(f'the test pipeline starts with {type(loader).__name__}; '
                             'inference_occ needs it to start with LoadMultiViewImages (its '
                             'decode_scale and camera order apply to the given images)')
        self.reduce = loader.reduce
        self.camera_names = loader.camera_names

    def __call__(self, frame, token):
        """{'inputs': {'imgs': uint8 (N, 3, H, W)}, 'data_samples': dict} as PackOccInputs
        packs it: `lidar2img` (N, 4, 4) float32 for the transformed pixels, `img_shape`,
        `ori_shape`, `token`, ..."""
        images = check_images(frame, self.camera_names)
        lidar2img = check_lidar2img(frame, len(self.camera_names))
        imgs = [read_image(image, f"frame['images'][{i}] ({cam})", token, cam, self.reduce)
                for i, (image, cam) in enumerate(zip(images, self.camera_names))]
        if len({img.shape for img in imgs}) != 1:
            raise ValueError(f"frame['images'] have different sizes "
                             f'{[img.shape[:2] for img in imgs]}: give every camera at the '
                             'size it was recorded')
        lidar2img[:, :2] /= self.reduce  # as LoadMultiViewImages scales it for its decode
        results = dict(token=token, scene_token=frame.get('scene_token'), imgs=imgs,
                       lidar2img=lidar2img, img_shape=imgs[0].shape[:2],
                       ori_shape=tuple(side * self.reduce for side in imgs[0].shape[:2]))
        for transform in self.transforms:
            results = transform(results)
        return results


def check_lidar2img(frame, num_cams):
    """float64 (N, 4, 4) copy of frame['lidar2img']; a wrong shape raises ValueError."""
    if frame.get('lidar2img') is None:
        raise ValueError("frame has no 'lidar2img': give (N, 4, 4) lidar -> pixel projections "
                         'of the images as given (occnet.apis.frame_from_info builds them from '
                         'an infos frame)')
    lidar2img = np.array(frame['lidar2img'], dtype=np.float64)
    if lidar2img.shape != (num_cams, 4, 4):
        raise ValueError(f"frame['lidar2img'] has shape {lidar2img.shape}; expected "
                         f'({num_cams}, 4, 4): one lidar -> pixel projection per camera, at '
                         "the images' original size")
    if not np.isfinite(lidar2img).all():
        raise ValueError("frame['lidar2img'] holds NaN or infinite values")
    return lidar2img


def check_images(frame, camera_names):
    """frame['images'] as a list, one per camera; a missing key or a count other than
    len(camera_names) raises ValueError naming the camera order."""
    images = frame.get('images')
    if images is None or isinstance(images, (str, np.ndarray)):
        raise ValueError(f"frame['images'] must be a list of {len(camera_names)} image paths "
                         f'or HxWx3 uint8 RGB arrays, in the order {", ".join(camera_names)}')
    if len(images) != len(camera_names):
        raise ValueError(f"frame['images'] has {len(images)} images; the config's dataset has "
                         f'{len(camera_names)} cameras: give one per camera, in the order '
                         f'{", ".join(camera_names)}')
    return list(images)


def read_image(image, where, token, cam, reduce):
    """One camera's RGB uint8 (H, W, 3) at 1/`reduce` of its size, as LoadMultiViewImages
    decodes it: a JPEG file is decoded at that scale by libjpeg (the dataset's pixels
    exactly); an array or another image file is resized to the same size with area
    interpolation (equal up to rounding). `where` names the image in errors."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise ValueError(f'{where}: no image file at {path}; check the path (relative '
                             "paths start from the current directory; resolve an infos "
                             "frame's paths against the data root)")
        with open(path, 'rb') as f:
            is_jpeg = f.read(len(JPEG_SOI)) == JPEG_SOI
        if is_jpeg:
            try:
                return read_jpeg(path, token, cam, reduce)
            except DataError as err:
                raise ValueError(f'{where}: {err}') from None
        decoded = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise ValueError(f'{where}: cannot read {path} as an image (not a JPEG or PNG '
                             'file, or truncated)')
        image = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{where}: expected an image path or an HxWx3 uint8 RGB array, got '
                         f'{image.dtype} {image.shape}')
    if reduce == 1:
        return image
    height, width = -(-image.shape[0] // reduce), -(-image.shape[1] // reduce)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def frame_from_info(info, data_root='', dataset='openscene'):
    """The `inference_occ` frame of one infos frame (tools/collect_data.py's pickles, read
    with occnet.datasets.infos.load_infos; other datasets' with readers.read_frames): what
    the dataset hands tools/test.py, so the prediction equals its prediction.

    Args:
        info: frame dict with `cams` (calibration and `data_path` per camera), the poses,
            `token`, `scene_token`, `timestamp` (us) and `can_bus` (18,).
        data_root: folder the infos' relative image paths start from.
        dataset: name, OccDescription or metainfo dict (camera order, grid frame).
    Returns:
        dict(images=[N paths], lidar2img=(N, 4, 4) at the original image size,
        lidar2global, ego2global (4, 4), can_bus (18,), token, scene_token, timestamp);
        lidar2global is that of the grid's frame (ego2global for an ego-frame grid, Occ3D).
    """
    desc = get_description(dataset)
    _, ego2global, lidar2global = pose_matrices(info)
    return dict(
        images=[resolve(data_root, info['cams'][cam]['data_path']) for cam in desc.camera_names],
        lidar2img=grid2img_matrices(info, desc),
        lidar2global=ego2global if desc.grid_frame == 'ego' else lidar2global,
        ego2global=ego2global,
        can_bus=None if info.get('can_bus') is None else np.asarray(info['can_bus'],
                                                                    dtype=np.float64),
        token=info.get('token'), scene_token=info.get('scene_token'),
        timestamp=None if info.get('timestamp') is None else int(info['timestamp']))
