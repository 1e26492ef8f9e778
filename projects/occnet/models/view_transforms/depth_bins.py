"""Categorical depth: bins along each camera ray, the one-hot targets LiDAR gives them, and
the expected depth a predicted distribution gives back."""
import torch


def num_bins(depth_range):
    """D, the bins of `depth_range` = (d_min, d_max, step): round((d_max - d_min) / step)."""
    d_min, d_max, step = depth_range
    return int(round((d_max - d_min) / step))


def bin_centres(depth_range, device='cpu'):
    """(D,) float32 metres: centres of the bins [d_min + k * step, d_min + (k + 1) * step)
    of `depth_range` = (d_min, d_max, step), k = 0 .. D - 1, D = round((d_max - d_min) /
    step) (1-45 m at 0.5 m: 88 bins centred at 1.25 .. 44.75 m)."""
    d_min, _, step = depth_range
    return d_min + (torch.arange(num_bins(depth_range), dtype=torch.float32, device=device)
                    + 0.5) * step


def depth_targets(depth_maps, depth_range):
    """One-hot bin targets of sparse depth maps.

    Args:
        depth_maps: (...) metres, 0 where there is no LiDAR return.
        depth_range: (d_min, d_max, step).
    Returns:
        one_hot (..., D) float32, and valid (...) bool: a return (> 0) inside
        [d_min, d_max).
    """
    d_min, d_max, step = depth_range
    bins = num_bins(depth_range)
    valid = (depth_maps > 0) & (depth_maps >= d_min) & (depth_maps < d_max)
    index = ((depth_maps - d_min) / step).floor().long().clamp(0, bins - 1)
    one_hot = torch.nn.functional.one_hot(index, bins).float()
    return one_hot * valid[..., None], valid


def expected_depth(depth_probs, depth_range):
    """(B, H, W) metres: sum over bins of probability x bin centre, for depth_probs
    (B, D, H, W) that sum to 1 over D."""
    centres = bin_centres(depth_range, depth_probs.device)
    return torch.einsum('bdhw,d->bhw', depth_probs.float(), centres)
