"""Depth accuracy against LiDAR, as the depth-estimation literature reports it."""
import numpy as np


def depth_error_sums(pred_depth, gt_depth):
    """Sums to accumulate over frames: {'abs_rel_sum', 'delta1_count', 'count'}.

    Args:
        pred_depth: (...) predicted depth, metres (e.g. the expected depth of the bins).
        gt_depth: (...) LiDAR depth, metres, 0 where there is no return (not counted).
    AbsRel = mean |pred - gt| / gt; delta < 1.25 = share of cells with max(pred / gt,
    gt / pred) < 1.25; both over the cells with a return.
    """
    pred = np.asarray(pred_depth, dtype=np.float64)
    gt = np.asarray(gt_depth, dtype=np.float64)
    valid = gt > 0
    pred, gt = pred[valid], gt[valid]
    ratio = np.maximum(pred / gt, gt / np.maximum(pred, 1e-6))
    return dict(abs_rel_sum=float((np.abs(pred - gt) / gt).sum()),
                delta1_count=int((ratio < 1.25).sum()), count=int(valid.sum()))


def depth_metrics(sums):
    """{'abs_rel', 'delta1'} (delta1 in %) from summed depth_error_sums; NaN with no
    LiDAR cell."""
    count = sums['count']
    if count == 0:
        return dict(abs_rel=float('nan'), delta1=float('nan'))
    return dict(abs_rel=sums['abs_rel_sum'] / count, delta1=100.0 * sums['delta1_count'] / count)
