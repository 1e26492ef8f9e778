"""Per-voxel flow regression loss."""
import torch.nn as nn

from occnet.registry import MODELS


@MODELS.register_module()
class FlowL1Loss(nn.Module):
    """Mean absolute error of (vx, vy) over the voxels of a mask (the occupied foreground
    voxels, chosen by the head).

    Args:
        loss_weight: multiplier of the loss.
    """

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, flow_pred, flow_target, mask):
        """flow_pred (B, 2, X, Y, Z) m/s, flow_target (B, X, Y, Z, 2) m/s, mask (B, X, Y, Z)
        bool -> scalar (0 when the mask is empty)."""
        pred = flow_pred.float().movedim(1, -1)[mask]  # (M, 2)
        if pred.numel() == 0:
            return flow_pred.sum() * 0.0
        return self.loss_weight * (pred - flow_target.float()[mask]).abs().mean()
