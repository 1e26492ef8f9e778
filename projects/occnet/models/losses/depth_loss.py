"""Depth supervision from LiDAR: binary cross-entropy over depth bins where a return exists."""
import torch
import torch.nn.functional as F
from torch import nn

from occnet.models.view_transforms.depth_bins import depth_targets
from occnet.registry import MODELS


def depth_bin_bce(depth_logits, one_hot):
    """Per-bin binary cross-entropy of softmax(depth_logits) against one-hot targets, summed
    over bins, from log-probabilities: -[y log p + (1 - y) log(1 - p)] with log p =
    log_softmax and log(1 - p) = log(-expm1(log p)). Unlike BCE on clamped probabilities,
    a confidently wrong cell keeps its gradient. Logs are floored at -100 (as
    F.binary_cross_entropy does).

    Args:
        depth_logits: (M, D); one_hot: (M, D) float.
    Returns:
        (M,) float32.
    """
    log_p = F.log_softmax(depth_logits.float(), dim=-1)
    log_not_p = torch.log(-torch.expm1(log_p.clamp(max=-1e-7)))
    return -(one_hot * log_p.clamp(min=-100)
             + (1 - one_hot) * log_not_p.clamp(min=-100)).sum(-1)


@MODELS.register_module()
class DepthBinLoss(nn.Module):
    """loss_weight x sum over LiDAR cells of depth_bin_bce / number of LiDAR cells (at least
    1), as BEVDepth normalises it: each cell's distribution is pulled to its return's bin
    and away from the others; cells without a return add nothing.

    Args:
        depth_range: (d_min, d_max, step) metres of the bins.
        loss_weight: factor on the loss (FlashOcc and BEVDet-occ: 0.05; BEVDepth's
            detection: 3.0).
    Shapes:
        forward(depth_logits (B, D, H, W), depth_maps (B, H, W) metres, 0 = no return)
        -> scalar
    """

    def __init__(self, depth_range, loss_weight=0.05):
        super().__init__()
        self.depth_range, self.loss_weight = tuple(depth_range), loss_weight

    def forward(self, depth_logits, depth_maps):
        if depth_maps.shape[-2:] != depth_logits.shape[-2:]:
            raise ValueError(f'depth_maps are {tuple(depth_maps.shape[-2:])} cells but the '
                             f'depth net predicts {tuple(depth_logits.shape[-2:])}: set '
                             "DepthMapsFromPoints' stride to the depth net's feature stride")
        one_hot, valid = depth_targets(depth_maps, self.depth_range)
        with torch.autocast(depth_logits.device.type, enabled=False):
            loss = depth_bin_bce(depth_logits.permute(0, 2, 3, 1)[valid], one_hot[valid])
        return self.loss_weight * loss.sum() / valid.sum().clamp(min=1)
