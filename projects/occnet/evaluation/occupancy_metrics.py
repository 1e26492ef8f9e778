"""Semantic occupancy metrics from a voxel confusion matrix (pure numpy).

A frame contributes a confusion matrix over its voxels (`confusion_matrix`); matrices are summed
over the whole split and only then turned into IoUs (`summarize_confusion`), so every IoU is
TP / (TP + FP + FN) over all voxels of all frames, never a mean of per-frame IoUs.
"""
import numpy as np

from occnet.descriptions import get_description
from occnet.geometry import voxel_centers


def confusion_matrix(gt, pred, num_classes=None, mask=None, dataset='openscene'):
    """Voxel confusion matrix of one frame (or any batch of voxels).

    Args:
        gt: integer label grid of any shape, e.g. (X, Y, Z); classes 0..num_classes-1
            (free = the dataset's free_index) or its ignore_index for voxels left out.
        pred: integer predicted classes, same shape as `gt`, values 0..num_classes-1.
        num_classes: number of labels including free; None: the dataset's num_classes.
        mask: optional bool array of `gt`'s shape; voxels where it is False are left out
            (e.g. the camera-visibility mask, True = visible).
        dataset: name, OccDescription or metainfo dict (occnet.descriptions) giving the
            free and ignore labels.
    Returns:
        (num_classes, num_classes) int64 counts; rows = ground truth, columns = prediction.
    """
    desc = get_description(dataset)
    num_classes = desc.num_classes if num_classes is None else num_classes
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f'ground truth shape {gt.shape} and prediction shape {pred.shape} '
                         'differ; both must be the dense (X, Y, Z) grid')
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != gt.shape:
            raise ValueError(f'mask shape {mask.shape} differs from ground truth shape '
                             f'{gt.shape}')
    if pred.size == 0:
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    pred_min, pred_max = int(pred.min()), int(pred.max())
    if pred_min < 0 or pred_max >= num_classes:
        bad = pred_max if pred_max >= num_classes else pred_min
        raise ValueError(f'prediction holds class {bad}; expected 0..{num_classes - 1} '
                         f'(free = {desc.free_index}); pass class indices, not logits or ignore')

    keep = gt != desc.ignore_index
    if mask is not None:
        keep &= mask
    gt_kept = gt[keep].astype(np.int64)
    if gt_kept.size and (gt_kept.min() < 0 or gt_kept.max() >= num_classes):
        bad = int(gt_kept.max() if gt_kept.max() >= num_classes else gt_kept.min())
        raise ValueError(f'ground truth holds class {bad}; expected 0..{num_classes - 1} '
                         f'or {desc.ignore_index} (ignore)')
    flat = gt_kept * num_classes + pred[keep]
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


SCALAR_KEYS = ('miou', 'miou_16', 'iou', 'precision', 'recall', 'fg_miou')
# voxels whose centre is closer than this (x-y, to the grid frame's origin) are "near"
NEAR_RANGE_M = 25.0
RANGES = ('all', 'near', 'far')


def near_voxels(grid_shape=None, pc_range=None, voxel_size=None, near_range_m=NEAR_RANGE_M,
                dataset='openscene'):
    """(X, Y, Z) bool: True where the voxel centre's horizontal distance to the origin of the
    grid's frame (OpenScene: the lidar; Occ3D: the ego) is below `near_range_m` metres.
    grid_shape, pc_range (metres) and voxel_size (metres) default to the dataset's."""
    desc = get_description(dataset)
    centres = voxel_centers(desc.grid_shape if grid_shape is None else grid_shape,
                            desc.point_cloud_range if pc_range is None else pc_range,
                            desc.voxel_size if voxel_size is None else voxel_size)
    return np.hypot(centres[..., 0], centres[..., 1]) < near_range_m


def frame_confusions(gt, pred, mask=None, near=None, dataset='openscene'):
    """(3, C, C) confusion matrices (C = the dataset's num_classes) of one frame over all
    voxels, the near ones and the far ones (RANGES order); `mask` as in confusion_matrix,
    `near` from near_voxels() (default: near_voxels of gt's shape on the dataset's grid)."""
    desc = get_description(dataset)
    near = near_voxels(np.shape(gt), dataset=desc) if near is None else near
    keep = np.ones(np.shape(gt), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return np.stack([confusion_matrix(gt, pred, mask=m, dataset=desc)
                     for m in (mask, keep & near, keep & ~near)])


STATIONARY_MS = 0.2  # ground-truth speed below which a voxel counts as stationary


def flow_error_sums(gt, pred, gt_flow, pred_flow, mask=None, dataset='openscene'):
    """Flow endpoint-error sums of one frame over the voxels that are foreground (a class of
    the dataset's `foreground`) in both ground truth and prediction (and inside `mask` when
    given).

    Args:
        gt, pred: (X, Y, Z) class grids.
        gt_flow, pred_flow: (X, Y, Z, 2) vx, vy in m/s.
        dataset: name, OccDescription or metainfo dict giving the foreground classes.
    Returns:
        (4,) float64: [sum of EPE over stationary voxels (ground-truth speed < 0.2 m/s),
        their count, sum over moving voxels, their count]; EPE = |pred - gt| in m/s.
    """
    foreground = get_description(dataset).foreground
    both = np.isin(gt, foreground) & np.isin(pred, foreground)
    if mask is not None:
        both &= np.asarray(mask, dtype=bool)
    gt_v = np.asarray(gt_flow, dtype=np.float64)[both]
    epe = np.linalg.norm(np.asarray(pred_flow, dtype=np.float64)[both] - gt_v, axis=-1)
    moving = np.linalg.norm(gt_v, axis=-1) >= STATIONARY_MS
    return np.array([epe[~moving].sum(), (~moving).sum(), epe[moving].sum(), moving.sum()],
                    dtype=np.float64)


def summarize_flow(sums):
    """{'flow_epe', 'flow_epe_stationary', 'flow_epe_moving'} (m/s, None without voxels) and
    'flow_voxels' from summed flow_error_sums."""
    still, num_still, moving, num_moving = (float(v) for v in sums)
    def mean(total, count):
        return total / count if count else None
    return {'flow_epe': mean(still + moving, num_still + num_moving),
            'flow_epe_stationary': mean(still, num_still),
            'flow_epe_moving': mean(moving, num_moving),
            'flow_voxels': int(num_still + num_moving)}


def _percent(numerator, denominator):
    """100 * numerator / denominator as a float, or None when the denominator is 0."""
    return 100.0 * float(numerator) / float(denominator) if denominator > 0 else None


def _mean(values):
    """Mean of the values that are not None, or None when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def class_ious(cm):
    """Per-slot IoU (%) of every class index 0..N-2 (all but free) of a confusion matrix.

    Returns a list of length N-1 with TP / (TP + FP + FN) * 100, or None for a class with no
    ground truth and no prediction (TP + FP + FN == 0).
    """
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    return [_percent(tp[c], tp[c] + fp[c] + fn[c]) for c in range(cm.shape[0] - 1)]


def summarize_confusion(cm, dataset='openscene'):
    """Occupancy metrics of a (C, C) confusion matrix summed over frames (C = the dataset's
    num_classes, free included).

    All values are percentages (floats) or None where undefined (a zero denominator).

    Args:
        cm: (C, C) counts from `confusion_matrix`, rows = ground truth.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        dict with
        - `per_class`: {class name: IoU %} for the dataset's `evaluated` classes (OpenScene:
          the 8 real classes); IoU = TP / (TP + FP + FN); None when the class has neither
          ground truth nor a prediction anywhere. A class predicted but absent from the
          ground truth has IoU 0.
        - `miou`: mean of `per_class` over the classes that are not None (the headline).
        - `miou_16`: only for a dataset with `baseline_slots` (OpenScene: 16): the published
          baseline's figure, the IoUs of every class slot but free (absent classes and
          unused slots count 0) summed and divided by `baseline_slots`.
        - `iou`: geometric IoU of occupied (any class but free) against free.
        - `precision`, `recall`: of occupied voxels, TP / (TP + FP) and TP / (TP + FN).
        - `fg_miou`: mean IoU over the present evaluated classes that are in the dataset's
          `foreground` (OpenScene: everything but background).
        - `num_voxels`: voxels counted (ignored and masked-out voxels excluded), int.
    """
    desc = get_description(dataset)
    num_classes, free = desc.num_classes, desc.free_index
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (num_classes, num_classes):
        raise ValueError(f'confusion matrix has shape {cm.shape}; expected '
                         f'({num_classes}, {num_classes}) for dataset {desc.name!r} '
                         f'(classes 0..{free - 1} plus free)')
    slot_ious = class_ious(cm)
    per_class = {desc.class_names[c]: slot_ious[c] for c in desc.evaluated}
    foreground = [slot_ious[c] for c in desc.evaluated if c in desc.foreground]

    occupied = np.arange(num_classes) != free
    occ_tp = int(cm[np.ix_(occupied, occupied)].sum())
    occ_fp = int(cm[free, occupied].sum())
    occ_fn = int(cm[occupied, free].sum())
    summary = {'per_class': per_class, 'miou': _mean(per_class.values())}
    if desc.baseline_slots is not None:
        summary['miou_16'] = sum(v or 0.0 for v in slot_ious) / desc.baseline_slots
    summary.update({
        'iou': _percent(occ_tp, occ_tp + occ_fp + occ_fn),
        'precision': _percent(occ_tp, occ_tp + occ_fp),
        'recall': _percent(occ_tp, occ_tp + occ_fn),
        'fg_miou': _mean(foreground),
        'num_voxels': int(cm.sum()),
    })
    return summary


def summarize_split(cm, cm_masked=None, num_frames=None, num_frames_masked=None,
                    dataset='openscene'):
    """The report of a whole split: `summarize_confusion` of the summed matrix, plus the same
    metrics with the camera mask under `<key>_masked` keys (e.g. `miou_masked`,
    `per_class_masked`) when a masked matrix is given.

    Args:
        cm: (C, C) confusion matrix summed over all frames (C = the dataset's num_classes),
            or (3, C, C) from frame_confusions (all, near, far): the near / far figures are
            then added under `<key>_near` / `<key>_far` for the scalar keys the summary has
            (`miou_near`, `iou_far_masked`...) and in full under `near` and `far`.
        cm_masked: optional matrix (same shape) over camera-visible voxels only.
        num_frames, num_frames_masked: frame counts recorded in the report when given.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        dict as described; this is what tools/eval_occ.py and OccupancyMetric write as JSON.
    """
    desc = get_description(dataset)
    cm = np.asarray(cm)
    ranges = cm.ndim == 3
    summary = _with_masked(cm[0] if ranges else cm,
                           None if cm_masked is None else
                           (np.asarray(cm_masked)[0] if ranges else cm_masked), desc)
    if ranges:
        for i, name in enumerate(RANGES[1:], start=1):
            part = _with_masked(cm[i], None if cm_masked is None else np.asarray(cm_masked)[i],
                                desc)
            summary[name] = part
            for key in SCALAR_KEYS:
                if key not in part:  # miou_16 where the dataset has no baseline mean
                    continue
                summary[f'{key}_{name}'] = part[key]
                if cm_masked is not None:
                    summary[f'{key}_{name}_masked'] = part[f'{key}_masked']
    if num_frames is not None:
        summary['num_frames'] = int(num_frames)
    if cm_masked is not None and num_frames_masked is not None:
        summary['num_frames_masked'] = int(num_frames_masked)
    return summary


def protocol_miou(summary, dataset='openscene'):
    """The mIoU of the dataset's published protocol from a summarize_split summary: `miou`
    (all voxels) or, for a dataset whose `miou_voxels` is 'camera' (Occ3D), `miou_masked`;
    None when that figure is missing or undefined (no `mask_camera` in the frames)."""
    key = 'miou_masked' if get_description(dataset).miou_voxels == 'camera' else 'miou'
    return summary.get(key)


def _with_masked(cm, cm_masked, desc):
    summary = summarize_confusion(cm, desc)
    if cm_masked is not None:
        for key, value in summarize_confusion(cm_masked, desc).items():
            summary[f'{key}_masked'] = value
    return summary
