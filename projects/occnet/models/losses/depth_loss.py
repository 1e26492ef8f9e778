"""Depth supervision from LiDAR: binary cross-entropy over depth bins where a return exists."""
import torch
import torch.nn.functional as F
from torch import nn

from occnet.models.view_transforms.depth_bins import depth_targets
from occnet.registry import MODELS


@MODELS.register_module()
class DepthBinLoss(nn.Module):
    """loss_weight x sum over LiDAR cells and bins of BCE(p, one-hot) / number of LiDAR cells
    (at least 1), as BEVDepth: each cell's distribution is pulled to its return's bin and
    away from the others; cells without a return add nothing.

    Args:
        depth_range: (d_min, d_max, step) metres of the bins.
        loss_weight: factor on the loss.
    Shapes:
        forward(depth_probs (B, D, H, W) softmax over D, depth_maps (B, H, W) metres, 0 = no
        return) -> scalar
    """

    def __init__(self, depth_range, loss_weight=3.0):
        super().__init__()
        self.depth_range, self.loss_weight = tuple(depth_range), loss_weight

    def forward(self, depth_probs, depth_maps):
        one_hot, valid = depth_targets(depth_maps, self.depth_range)
        probs = depth_probs.float().permute(0, 2, 3, 1)[valid]  # (M, D)
        with torch.autocast(depth_probs.device.type, enabled=False):
            loss = F.binary_cross_entropy(probs.clamp(1e-6, 1 - 1e-6), one_hot[valid],
                                          reduction='sum')
        return self.loss_weight * loss / valid.sum().clamp(min=1)
