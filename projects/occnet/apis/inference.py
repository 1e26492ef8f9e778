"""One frame through a model as tools/test.py runs it: test pipeline, data preprocessor,
predict; the previous frame's BEV carried across calls of the same scene."""
import inspect
import itertools
import warnings
import weakref

import numpy as np
import torch
from mmengine.registry import DefaultScope
from pyquaternion import Quaternion

from occnet.apis.frame_input import ImagePipeline, inference_dataset_cfg
from occnet.datasets.collate import occ_collate
from occnet.datasets.openscene_dataset import OpenSceneOccDataset
from occnet.datasets.temporal import can_bus_with_deltas
from occnet.datasets.transforms.bev_flip import mirror_matrix
from occnet.geometry import relative_pose

# the dataset links a frame to the previous one of its scene up to this gap (seconds)
DEFAULT_MAX_PREV_GAP_S = inspect.signature(
    OpenSceneOccDataset.__init__).parameters['max_prev_gap_s'].default

_state = weakref.WeakKeyDictionary()  # model -> InferenceState
_untracked = itertools.count()  # names frames given without a token


class InferenceState:
    """What inference_occ keeps per model: the image pipeline of its config and the pose
    and tokens of the previous call (None after a frame that cannot be linked to)."""

    def __init__(self, cfg):
        dataset = inference_dataset_cfg(cfg)
        self.scope = cfg.get('default_scope', 'occnet')
        self.pipeline = ImagePipeline(dataset['pipeline'], self.scope)
        self.max_prev_gap_s = dataset.get('max_prev_gap_s', DEFAULT_MAX_PREV_GAP_S)
        self.previous = None


def model_state(model):
    """The model's InferenceState (made on its first call, from `model.cfg`)."""
    if model not in _state:
        cfg = getattr(model, 'cfg', None)
        if cfg is None:
            raise ValueError('inference_occ needs a model from occnet.apis.init_model (it '
                             'attaches the config as model.cfg); for a model you built '
                             'yourself, set model.cfg to its mmengine Config')
        _state[model] = InferenceState(cfg)
    return _state[model]


def optional_matrix(frame, key, shape):
    """float64 array of frame[key] with `shape`, or None when the frame has no such key."""
    if frame.get(key) is None:
        return None
    value = np.asarray(frame[key], dtype=np.float64)
    if value.shape != shape:
        raise ValueError(f"frame['{key}'] has shape {value.shape}; expected {shape}")
    return value


def frame_poses(frame):
    """Poses of a frame for the temporal inputs: {'lidar2global': (4, 4) or None,
    'can_bus_pose': the (4, 4) ego2global if given, else lidar2global, else None}."""
    lidar2global = optional_matrix(frame, 'lidar2global', (4, 4))
    ego2global = optional_matrix(frame, 'ego2global', (4, 4))
    return dict(lidar2global=lidar2global,
                can_bus_pose=ego2global if ego2global is not None else lidar2global)


def linked_previous(previous, frame, max_gap_s):
    """The previous call's record when `frame` continues it (same scene_token, another token,
    lidar2global given, and, when both frames give a `timestamp` (us), at most `max_gap_s`
    later, as the dataset links frames), else None."""
    if previous is None or frame.get('lidar2global') is None:
        return None
    if frame.get('scene_token') is None or frame.get('token') is None:
        return None
    if frame['scene_token'] != previous['scene_token'] or frame['token'] == previous['token']:
        return None
    if frame.get('timestamp') is not None and previous['timestamp'] is not None:
        gap_us = int(frame['timestamp']) - previous['timestamp']
        if not 0 <= gap_us <= max_gap_s * 1e6:
            return None
    return previous


def stored_can_bus(frame, pose):
    """(18,) can_bus as an infos frame stores it: frame['can_bus'] when given; else zeros with
    [0:3] the translation and [3:7] the rotation quaternion [w, x, y, z] of `pose` (the
    velocities, accelerations and turn rates are unknown and stay 0)."""
    if frame.get('can_bus') is not None:
        can_bus = np.asarray(frame['can_bus'], dtype=np.float64).reshape(-1)
        if can_bus.shape != (18,):
            raise ValueError(f"frame['can_bus'] has {can_bus.size} values; expected 18, as the "
                             'infos store it')
        return can_bus
    can_bus = np.zeros(18)
    if pose is not None:
        can_bus[:3] = pose[:3, 3]
        can_bus[3:7] = Quaternion(matrix=pose[:3, :3], atol=1e-6).elements
    return can_bus


def temporal_inputs(frame, poses, prev):
    """cur2prev (4, 4) (this lidar frame -> the previous one's; identity without one) and
    can_bus (18,) float32 in BEVFormer's convention (temporal.can_bus_with_deltas), both as
    OpenSceneOccDataset computes them in test mode."""
    linked = prev is not None
    cur2prev = (relative_pose(poses['lidar2global'], prev['lidar2global']) if linked
                else np.eye(4))
    pose = poses['can_bus_pose']
    can_bus = can_bus_with_deltas(stored_can_bus(frame, pose),
                                  np.eye(4) if pose is None else pose,
                                  prev['can_bus_pose'] if linked else None)
    return cur2prev, can_bus


def single_frame_batch(packed, cur2prev, can_bus, prev):
    """A test-dataloader batch of one frame (occ_collate of one dataset item, T = 1): the
    packed images (1, N, 3, H, W) and the sample OpenSceneOccDataset.build_sample makes in
    test mode, with `lidar2img` (1, N, 4, 4), `cur2prev` (1, 4, 4), `can_bus` (1, 18),
    `queue_valid`, `scene_start` and `prev_token` (None without a linked previous frame)."""
    sample = dict(packed['data_samples'])
    flip = mirror_matrix(*sample.get('bev_flip', (False, False)))
    sample.update(cur2prev=(flip @ cur2prev @ flip)[None].astype(np.float32),
                  lidar2img=sample['lidar2img'][None], can_bus=can_bus[None],
                  queue_valid=np.array([True]), scene_start=prev is None,
                  prev_token=prev['token'] if prev is not None else None)
    return occ_collate([dict(inputs=dict(imgs=packed['inputs']['imgs'][None]),
                             data_samples=sample)])


def inference_occ(model, frame):
    """Predict the occupancy of one frame, as tools/test.py predicts it.

    The images go through the image side of the config's test pipeline (its
    LoadMultiViewImages decode scale, ResizeMultiViewImages, ...: frame_input.ImagePipeline),
    the model's data preprocessor (normalisation, padding) and its predict path, without
    gradient. A model in video_test_mode carries the previous call's BEV when this frame
    continues that call's scene: same `scene_token`, another `token`, `lidar2global` given
    (and, when both give a `timestamp`, at most the dataset's max_prev_gap_s later); any
    other frame starts afresh, as the first frame of a scene does in tools/test.py. Feed a
    scene's frames in time order.

    Args:
        model: from init_model (it carries `model.cfg`).
        frame: dict with
            images: N image paths (JPEG or PNG) or (H, W, 3) uint8 RGB arrays, in the
                config's camera order (OpenScene: CAM_F0, CAM_L0, CAM_L1, CAM_L2, CAM_R0,
                CAM_R1, CAM_R2, CAM_B0), at the size they were recorded.
            lidar2img: (N, 4, 4) projections from the grid's frame (OpenScene: the lidar
                frame, metres) to the pixels of those images as given.
            optional: lidar2global (4, 4) (the grid's frame -> global), token, scene_token,
                timestamp (int, us): needed to carry the BEV; ego2global (4, 4) and
                can_bus (18,) as the infos store them, for an encoder with use_can_bus.
            occnet.apis.frame_from_info builds all of these from an infos frame.
    CAN bus (encoders with use_can_bus): the vector is built as the dataset builds it
    (temporal.can_bus_with_deltas): the stored values from frame['can_bus'], the heading
    from ego2global (else lidar2global), and the motion since the previous frame (zeroed by
    the model without a carried BEV). Without frame['can_bus'] the stored values are the
    pose's translation and quaternion with zero velocities, accelerations and turn rates:
    the prediction then differs from tools/test.py's, and a warning says so.
    JPEG paths give tools/test.py's pixels exactly; arrays and other files are resized to
    the decode scale with area interpolation (equal up to rounding; the same with a config
    that decodes at full size).

    Returns:
        dict with `semantics` (X, Y, Z) uint8 classes (the dataset's free_index = free;
        OpenScene (200, 200, 16), 11 free), `flow` (X, Y, Z, 2) float32 m/s with a flow head,
        and `depth` (N, H_f, W_f) float32 metres from an encoder that predicts depth.
    """
    if not isinstance(frame, dict):
        raise TypeError(f'inference_occ takes a frame dict (images, lidar2img, ...), got '
                        f'{type(frame).__name__}')
    state = model_state(model)
    poses = frame_poses(frame)
    prev = linked_previous(state.previous, frame, state.max_prev_gap_s)
    token = frame.get('token')
    token = f'untracked-frame-{next(_untracked)}' if token is None else token
    with DefaultScope.overwrite_default_scope(state.scope):
        packed = state.pipeline(frame, token)
    encoder = getattr(model, 'bev_encoder', None)
    if getattr(encoder, 'use_can_bus', False) and frame.get('can_bus') is None:
        warnings.warn("inference_occ: the model's encoder reads the CAN bus and the frame has "
                      "no 'can_bus': velocities, accelerations and turn rates count as 0, so "
                      'the prediction can differ from tools/test.py; pass the infos can_bus '
                      '(frame_from_info does)', stacklevel=2)
    batch = single_frame_batch(packed, *temporal_inputs(frame, poses, prev), prev)
    with torch.no_grad():
        result = model.test_step(batch)[0]
    state.previous = None
    if all(frame.get(key) is not None for key in ('token', 'scene_token', 'lidar2global')):
        state.previous = dict(token=token, scene_token=frame['scene_token'],
                              timestamp=(None if frame.get('timestamp') is None
                                         else int(frame['timestamp'])), **poses)
    return prediction_arrays(result)


def prediction_arrays(result):
    """The model's per-sample result as numpy: semantics, and flow / depth when predicted."""
    out = dict(semantics=result['occ_pred'].numpy().astype(np.uint8))
    if 'flow_pred' in result:
        out['flow'] = result['flow_pred'].numpy().astype(np.float32)
    if 'depth_pred' in result:
        out['depth'] = result['depth_pred'].numpy().astype(np.float32)
    return out
