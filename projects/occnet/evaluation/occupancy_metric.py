"""mmengine metric for semantic occupancy: per-frame confusion matrices, summed over the split
on every rank (duplicates from padded distributed samplers removed by frame token)."""
import logging
import math
import os

import numpy as np
import torch
from mmengine.dist import all_gather_object, is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from occnet.descriptions import get_description
from occnet.evaluation.depth_metrics import depth_error_sums, depth_metrics
from occnet.evaluation.occupancy_metrics import (RANGES, SCALAR_KEYS, flow_error_sums,
                                                 frame_confusions, near_voxels,
                                                 protocol_miou, summarize_flow,
                                                 summarize_split)
from occnet.evaluation.ray_iou import (RAY_THRESHOLD_KEYS, frame_ray_confusion,
                                       ray_iou_summary)
from occnet.evaluation.smear import smear_counts, smear_summary
from occnet.evaluation.report import format_table, save_prediction, write_json, write_markdown
from occnet.registry import METRICS


def sample_field(sample, key):
    """`sample[key]` of a dict or a data element (data or metainfo field); None if absent."""
    if hasattr(sample, 'get'):
        return sample.get(key)
    return getattr(sample, key, None)


def to_numpy(array):
    """A tensor (any device) or array-like as a numpy array."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def sum_unique_frames(records):
    """Sum per-frame confusion matrices and counts, counting each frame token once.

    Args:
        records: iterable of (token, cm, cm_masked or None[, flow sums (4,) or None[, ray
            counts (T, 3, K) or None[, depth sums (3,) or None[, smear counts (3,) or
            None]]]]), matrices of any one shape, e.g. (3, 12, 12) from frame_confusions.
    Returns:
        (cm, cm_masked or None, num_frames, num_frames_masked, num_duplicates, flow sums or
        None, ray counts or None, depth sums or None, smear counts or None); each optional
        total sums the frames that have it.
    """
    seen = set()
    cm_total = None
    optional = [None] * 5  # cm_masked, flow sums, ray counts, depth sums, smear counts
    num_masked = num_duplicates = 0
    for token, cm, *extras in records:
        if token in seen:
            num_duplicates += 1
            continue
        seen.add(token)
        cm_total = cm.copy() if cm_total is None else cm_total + cm
        for i, extra in enumerate(extras):
            if extra is not None:
                optional[i] = extra.copy() if optional[i] is None else optional[i] + extra
        num_masked += extras[0] is not None
    return (cm_total, optional[0], len(seen), num_masked, num_duplicates, *optional[1:])


@METRICS.register_module()
class OccupancyMetric(BaseMetric):
    """Semantic occupancy IoU, mIoU (the dataset's evaluated classes; OpenScene: the 8 real
    ones), mIoU-16 (OpenScene's baseline figure) and geometric IoU.

    The dataset's facts (classes, free and ignore labels, grid) come from mmengine's
    `dataset_meta` when the runner sets it to a description's `metainfo()` (a dict with
    `free_index`), else from `dataset`; they are looked up when frames arrive, since the
    runner sets `dataset_meta` after construction.

    Each rank stores one small record per frame (token and C x C confusion matrices, C the
    dataset's num_classes);
    `evaluate` gathers all ranks' records, drops repeated tokens, sums and summarises, so
    every rank returns the same numbers whatever the sampler's split or padding.

    Args:
        out_dir: when set, each prediction is also written as `<out_dir>/<token>.npz`
            (contract 4: `semantics` uint8 (X, Y, Z), `flow` float32 (X, Y, Z, 2) if predicted).
        out_json: when set, the main rank writes the summary (`summarize_split`) there, and
            the table as Markdown next to it (`.md`).
        print_table: log the per-class table after evaluation.
        ray_iou: also compute RayIoU (evaluation/ray_iou.py; about 0.2 s a frame on one CPU
            core) from the `ray_origins` each test-mode OpenSceneOccDataset sample carries.
        smear: also count false object voxels along the camera rays of true objects
            (evaluation/smear.py), from each sample's `lidar2img` and `img_shape`.
        prefix: key prefix of the returned metrics; default 'occ' (e.g. 'occ/miou').
        dataset: name, OccDescription or metainfo dict (occnet.descriptions) used when
            `dataset_meta` carries no description.
    Attributes:
        last_summary: the un-prefixed summary of the last `evaluate` (with `per_class`,
            None where undefined), as written to `out_json`.
    """

    default_prefix = 'occ'

    def __init__(self, out_dir=None, out_json=None, print_table=True, ray_iou=False,
                 smear=False, collect_device='cpu', prefix=None, dataset='openscene'):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.dataset = dataset
        self.ray_iou = ray_iou
        self.smear = smear
        self._near = None
        self.out_dir = out_dir
        self.out_json = out_json
        self.print_table = print_table
        self.last_summary = None

    @property
    def description(self):
        """The OccDescription of the evaluated dataset: `dataset_meta` when it holds one (a
        dict with `free_index`), else the `dataset` argument."""
        meta = self.dataset_meta
        source = meta if isinstance(meta, dict) and 'free_index' in meta else self.dataset
        return get_description(source)

    def _near_voxels(self, shape, desc):
        if self._near is None or self._near[0] != (shape, desc):
            self._near = ((shape, desc), near_voxels(shape, dataset=desc))
        return self._near[1]

    def process(self, data_batch, data_samples):
        """Confusion matrices of one batch: (3, C, C) per frame, all / near / far voxels
        (C = the dataset's num_classes).

        Args:
            data_batch: dict whose `data_samples` hold, per sample, `voxel_semantics`
                (X, Y, Z) uint8 (the dataset's free_index = free, ignore_index = ignore) and
                optionally `mask_camera` (X, Y, Z) bool (True = visible).
            data_samples: model outputs, one dict per sample with `token`, `occ_pred`
                (X, Y, Z) classes 0..C-1 and optionally `flow_pred` (X, Y, Z, 2) and
                `depth_pred` (N, H_d, W_d) metres (the expected depth of a depth model),
                scored against the sample's LiDAR `depth_maps` (N, H_d, W_d) when it has them.
        """
        desc = self.description
        gt_samples = data_batch['data_samples']
        if len(gt_samples) != len(data_samples):
            raise ValueError(f'batch has {len(gt_samples)} ground-truth samples but the model '
                             f'returned {len(data_samples)} predictions')
        for gt_sample, pred_sample in zip(gt_samples, data_samples):
            token = sample_field(pred_sample, 'token') or sample_field(gt_sample, 'token')
            if token is None:
                raise KeyError('prediction carries no `token`; the model must copy each '
                               "sample's metainfo token into its output")
            occ_pred = sample_field(pred_sample, 'occ_pred')
            voxel_semantics = sample_field(gt_sample, 'voxel_semantics')
            if occ_pred is None or voxel_semantics is None:
                missing = 'occ_pred in the prediction' if occ_pred is None else \
                    'voxel_semantics in data_batch["data_samples"]'
                raise KeyError(f'frame token {token}: no {missing}')
            occ_pred = to_numpy(occ_pred)
            voxel_semantics = to_numpy(voxel_semantics)
            mask_camera = sample_field(gt_sample, 'mask_camera')
            try:
                near = self._near_voxels(voxel_semantics.shape, desc)
                cm = frame_confusions(voxel_semantics, occ_pred, near=near, dataset=desc)
                cm_masked = None if mask_camera is None else frame_confusions(
                    voxel_semantics, occ_pred, mask=to_numpy(mask_camera), near=near,
                    dataset=desc)
            except ValueError as err:
                raise ValueError(f'frame token {token}: {err}') from err
            flow_pred = sample_field(pred_sample, 'flow_pred')
            voxel_flow = sample_field(gt_sample, 'voxel_flow')
            flow_sums = None if flow_pred is None or voxel_flow is None else flow_error_sums(
                voxel_semantics, occ_pred, to_numpy(voxel_flow), to_numpy(flow_pred),
                dataset=desc)
            self.results.append((
                str(token), cm, cm_masked, flow_sums,
                self._ray_counts(token, gt_sample, voxel_semantics, occ_pred, desc),
                self._depth_sums(token, gt_sample, pred_sample),
                self._smear_counts(gt_sample, voxel_semantics, occ_pred, desc)))

            if self.out_dir is not None:
                save_prediction(self.out_dir, token, occ_pred,
                                None if flow_pred is None else to_numpy(flow_pred))

    def _ray_counts(self, token, gt_sample, voxel_semantics, occ_pred, desc):
        """(T, 3, K) RayIoU counts of one frame (K = the dataset's free_index: every class
        but free), or None when ray_iou is off."""
        if not self.ray_iou:
            return None
        origins = sample_field(gt_sample, 'ray_origins')
        if origins is None:
            raise KeyError(f'frame token {token}: OccupancyMetric(ray_iou=True) needs '
                           '`ray_origins` in each data sample; the test-mode '
                           'OpenSceneOccDataset provides them with with_ray_origins=True '
                           '(tools/test.py sets it when the evaluator has ray_iou=True)')
        return frame_ray_confusion(voxel_semantics, occ_pred, to_numpy(origins), dataset=desc)

    def _smear_counts(self, gt_sample, voxel_semantics, occ_pred, desc):
        """(3,) smear counts of one frame (evaluation/smear.py), or None when smear is off."""
        if not self.smear:
            return None
        lidar2img = to_numpy(sample_field(gt_sample, 'lidar2img'))
        if lidar2img.ndim == 4:  # (T, N, 4, 4): the current frame is the last
            lidar2img = lidar2img[-1]
        image_hw = tuple(to_numpy(sample_field(gt_sample, 'img_shape'))[:2])
        return smear_counts(voxel_semantics, occ_pred, lidar2img, image_hw, dataset=desc)

    @staticmethod
    def _depth_sums(token, gt_sample, pred_sample):
        """(3,) float64 [AbsRel sum, delta < 1.25 count, LiDAR cells] of one frame's
        predicted depth, or None when the model predicts no depth or the sample has no
        LiDAR depth maps."""
        depth_pred = sample_field(pred_sample, 'depth_pred')
        depth_gt = sample_field(gt_sample, 'depth_maps')
        if depth_pred is None or depth_gt is None:
            return None
        depth_pred, depth_gt = to_numpy(depth_pred), to_numpy(depth_gt)
        if depth_pred.shape != depth_gt.shape:
            raise ValueError(f'frame token {token}: depth_pred is {depth_pred.shape} but the '
                             f'LiDAR depth_maps are {depth_gt.shape}; set '
                             "DepthMapsFromPoints' stride to the depth net's feature stride")
        sums = depth_error_sums(depth_pred, depth_gt)
        return np.array([sums['abs_rel_sum'], sums['delta1_count'], sums['count']],
                        dtype=np.float64)

    def compute_metrics(self, results):
        """Summary of all records (every rank's, already gathered); returns the scalar
        metrics, un-prefixed, NaN where undefined. Sets `last_summary`, logs the table and
        writes `out_json` (main rank)."""
        desc = self.description
        cm, cm_masked, num_frames, num_masked, num_duplicates, flow, rays, depth, smear = \
            sum_unique_frames(results)
        if cm is None:
            print_log('OccupancyMetric received no frames; metrics are undefined',
                      logger='current', level=logging.WARNING)
            cm = np.zeros((len(RANGES), desc.num_classes, desc.num_classes), dtype=np.int64)
        if num_duplicates:
            print_log(f'OccupancyMetric: counted {num_frames} frames once each, dropped '
                      f'{num_duplicates} repeats (distributed sampler padding)',
                      logger='current')
        if cm_masked is not None and num_masked < num_frames:
            print_log(f'OccupancyMetric: only {num_masked} of {num_frames} frames carry '
                      '`mask_camera`; masked metrics cover those frames only',
                      logger='current', level=logging.WARNING)
        summary = summarize_split(cm, cm_masked, num_frames, num_masked, dataset=desc)
        summary['protocol_miou'] = protocol_miou(summary, desc)
        if summary['protocol_miou'] is None and desc.miou_voxels == 'camera':
            print_log(f'OccupancyMetric: the {desc.name} mIoU counts camera-visible voxels, '
                      'but no frame carries `mask_camera`; protocol_miou is undefined',
                      logger='current', level=logging.WARNING)
        if flow is not None:
            summary.update(summarize_flow(flow))
        if rays is not None:
            summary.update(ray_iou_summary(rays, dataset=desc))
        if depth is not None:
            scores = depth_metrics(dict(abs_rel_sum=depth[0], delta1_count=depth[1],
                                        count=depth[2]))
            defined = depth[2] > 0
            summary.update(depth_abs_rel=scores['abs_rel'] if defined else None,
                           depth_delta1=scores['delta1'] if defined else None,
                           depth_cells=int(depth[2]))
        if smear is not None:
            summary.update(smear_summary(smear))
        self.last_summary = summary

        if self.print_table:
            print_log('Occupancy evaluation\n' + format_table(summary), logger='current')
        if self.out_json is not None and is_main_process():
            write_json(summary, self.out_json)
            markdown = os.path.splitext(self.out_json)[0] + '.md'
            write_markdown(summary, markdown)
            print_log(f'occupancy metrics written to {self.out_json} and {markdown}',
                      logger='current')
        return flatten_summary(summary)

    def evaluate(self, size):
        """Gather every rank's records with `all_gather_object`, count each token once,
        and summarise identically on all ranks.

        Args:
            size: number of frames in the dataset; a different number of unique frames
                is reported as a warning.
        Returns:
            dict of scalar metrics with prefixed keys, e.g. {'occ/miou': 7.5, ...}.
        """
        gathered = all_gather_object(self.results)
        results = [record for rank_records in gathered for record in rank_records]
        self.results.clear()
        metrics = self.compute_metrics(results)
        num_frames = self.last_summary['num_frames']
        if num_frames != size:
            print_log(f'OccupancyMetric evaluated {num_frames} unique frames but the dataset '
                      f'has {size}', logger='current', level=logging.WARNING)
        if self.prefix:
            metrics = {f'{self.prefix}/{key}': value for key, value in metrics.items()}
        return metrics


def flatten_summary(summary):
    """Scalar metrics of a summary for the runner's log: the headline figures the summary
    has (no `miou_16` for a dataset without a baseline mean), their `_masked`, `_near` and
    `_far` variants, `<class>_iou` per class and, with the camera mask, `<class>_iou_masked`;
    undefined values become NaN."""
    def number(value):
        return math.nan if value is None else float(value)

    keys = [key for key in SCALAR_KEYS if key in summary]
    flat = {}
    for key in keys:
        flat[key] = number(summary[key])
    for suffix in ('_masked', '_near', '_far', '_near_masked', '_far_masked'):
        if f'miou{suffix}' in summary:
            for key in keys:
                flat[f'{key}{suffix}'] = number(summary[f'{key}{suffix}'])
    for key in ('protocol_miou', 'flow_epe', 'flow_epe_stationary', 'flow_epe_moving',
                'ray_iou', *RAY_THRESHOLD_KEYS, 'depth_abs_rel', 'depth_delta1', 'smear_share',
                'false_object_share'):
        if key in summary:
            flat[key] = number(summary[key])
    for name, iou in summary['per_class'].items():
        flat[f'{name}_iou'] = number(iou)
    for name, iou in summary.get('per_class_masked', {}).items():  # Occ3D's per-class figures
        flat[f'{name}_iou_masked'] = number(iou)
    return flat
