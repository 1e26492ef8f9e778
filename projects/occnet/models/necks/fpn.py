"""Feature pyramid network over backbone levels."""
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from occnet.registry import MODELS


@MODELS.register_module()
class FPN(BaseModule):
    """Top-down FPN: 1x1 lateral convs, nearest upsampling and addition, 3x3 output convs.

    Args:
        in_channels: channels of each input level (fine to coarse).
        out_channels: channels of every output level.
        num_outs: number of outputs; extra levels beyond the inputs come from stride-2 3x3
            convs on the coarsest output.
        out_ids: only these input levels get an output conv and are returned (FlashOcc's
            CustomFPN `out_ids`: the coarser levels only feed the top-down merge, so no
            parameter goes unused under DDP); None: every level, plus the extra ones.
    Returns (forward):
        tuple of num_outs tensors (B, out_channels, H_i, W_i), fine to coarse (len(out_ids)
        tensors, in out_ids order, when out_ids is given).
    """

    def __init__(self, in_channels, out_channels=256, num_outs=None, out_ids=None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_outs = num_outs or len(in_channels)
        if self.num_outs < len(in_channels):
            raise ValueError(f'FPN num_outs={self.num_outs} < number of inputs '
                             f'{len(in_channels)}')
        if out_ids is not None and (self.num_outs != len(in_channels) or not out_ids or not
                                    set(out_ids) <= set(range(len(in_channels)))):
            raise ValueError(f'FPN out_ids={out_ids} must name input levels 0..'
                             f'{len(in_channels) - 1}, with num_outs equal to the '
                             f'{len(in_channels)} inputs (no extra levels)')
        self.out_ids = tuple(range(len(in_channels)) if out_ids is None else out_ids)
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output_convs = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in self.out_ids)
        self.extra_convs = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
            for _ in range(self.num_outs - len(in_channels)))

    def forward(self, feats):
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode='nearest')
        outs = [conv(laterals[i]) for conv, i in zip(self.output_convs, self.out_ids)]
        for conv in self.extra_convs:
            outs.append(conv(outs[-1]))
        return tuple(outs)
