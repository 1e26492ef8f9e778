"""FlashOcc's 2D BEV encoder: ResNet-style stages on the BEV map and an FPN-style merge back
to the input resolution (BEVDet's CustomResNet + FPN_LSS)."""
import torch
from torch import nn
from torch.nn import functional as F

from occnet.registry import MODELS


def conv_bn(in_channels, out_channels, kernel_size=3, stride=1, relu=True):
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                        bias=False), nn.BatchNorm2d(out_channels)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet's basic block; with stride 2 the shortcut is a strided 3x3 conv (as BEVDet)."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.body = nn.Sequential(conv_bn(in_channels, out_channels, stride=stride),
                                  conv_bn(out_channels, out_channels, relu=False))
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels else
                         nn.Conv2d(in_channels, out_channels, 3, stride, 1))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


@MODELS.register_module()
class BEVResNetFPN(nn.Module):
    """BEV map -> BEV map at the same resolution.

    Stage i halves the resolution and has stage_channels[i] channels (blocks_per_stage basic
    blocks). The last stage is upsampled to the first stage's size (x 2^(S-1)), concatenated
    with it, and two 3x3 conv-BN-ReLU layers give 2 x out_channels; then it is upsampled x 2
    to the input size, and a 3x3 conv-BN-ReLU and a 1x1 conv give out_channels.

    Args:
        in_channels: C of the input BEV map.
        stage_channels: channels of the stages (FlashOcc: 128, 256, 512 from 64).
        blocks_per_stage: basic blocks per stage (FlashOcc: 2).
        out_channels: C of the output (FlashOcc: 256).
    Shapes:
        forward((B, in_channels, X, Y)) -> (B, out_channels, X, Y); X and Y must be multiples
        of 2^len(stage_channels).
    """

    def __init__(self, in_channels, stage_channels=(128, 256, 512), blocks_per_stage=2,
                 out_channels=256):
        super().__init__()
        stages, channels = [], in_channels
        for width in stage_channels:
            stages.append(nn.Sequential(BasicBlock(channels, width, stride=2), *[
                BasicBlock(width, width) for _ in range(blocks_per_stage - 1)]))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.merge = nn.Sequential(
            conv_bn(stage_channels[0] + stage_channels[-1], 2 * out_channels),
            conv_bn(2 * out_channels, 2 * out_channels))
        self.out = nn.Sequential(conv_bn(2 * out_channels, out_channels),
                                 nn.Conv2d(out_channels, out_channels, 1))
        self.factor = 2 ** len(stage_channels)

    def forward(self, bev_map):
        size = bev_map.shape[-2:]
        if size[0] % self.factor or size[1] % self.factor:
            raise ValueError(f'BEVResNetFPN needs a BEV size that is a multiple of '
                             f'{self.factor}, got {tuple(size)}')
        feats, x = [], bev_map
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        top = F.interpolate(feats[-1], size=feats[0].shape[-2:], mode='bilinear',
                            align_corners=True)
        x = self.merge(torch.cat([feats[0], top], dim=1))
        x = F.interpolate(x, size=size, mode='bilinear', align_corners=True)
        return self.out(x)
