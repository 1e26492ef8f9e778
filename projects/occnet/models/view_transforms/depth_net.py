"""Camera-aware depth network (BEVDepth style): categorical depth and context features per
pixel of each camera's feature map."""
import torch
from torch import nn

from occnet.models.view_transforms.camera_params import CAMERA_DIMS
from occnet.registry import MODELS


def conv_bn_relu(in_channels, out_channels, kernel_size=3):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size,
                                   padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut (ResNet's basic block)."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(channels, channels),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class CameraGate(nn.Module):
    """Squeeze-and-excitation by the camera: x * sigmoid(W2 relu(W1 mlp(camera))), one gate
    per channel, so the same pixel features are read differently for each camera."""

    def __init__(self, channels):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(CAMERA_DIMS, channels), nn.ReLU(inplace=True),
                                 nn.Linear(channels, channels))
        self.excite = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(inplace=True),
                                    nn.Linear(channels, channels))

    def forward(self, x, camera):
        gate = torch.sigmoid(self.excite(self.mlp(camera)))  # (B*N, C)
        return x * gate[:, :, None, None]


@MODELS.register_module()
class CameraAwareDepthNet(nn.Module):
    """Per-pixel depth distribution and context features of camera feature maps.

    reduce (3x3 conv) -> [camera gate -> residual blocks -> 1x1 conv to depth bins] and
    [camera gate -> 1x1 conv to context channels]. The camera parameters
    (view_transforms.camera_params: intrinsics and extrinsics, CAMERA_DIMS) are normalised by
    a BatchNorm1d first, as BEVDepth does.

    Args:
        in_channels: image feature channels.
        mid_channels: width of the shared reduction and the depth branch.
        context_channels: C of the context features that are lifted.
        num_bins: D depth bins.
        num_blocks: residual blocks of the depth branch.
    Shapes:
        forward(feats (B*N, in_channels, H, W), camera (B*N, CAMERA_DIMS) float32)
        -> depth_logits (B*N, D, H, W), context (B*N, context_channels, H, W)
    """

    def __init__(self, in_channels, mid_channels, context_channels, num_bins, num_blocks=2):
        super().__init__()
        self.reduce = conv_bn_relu(in_channels, mid_channels)
        self.camera_norm = nn.BatchNorm1d(CAMERA_DIMS)
        self.depth_gate = CameraGate(mid_channels)
        self.context_gate = CameraGate(mid_channels)
        self.depth_blocks = nn.Sequential(*[ResidualBlock(mid_channels)
                                            for _ in range(num_blocks)])
        self.depth_out = nn.Conv2d(mid_channels, num_bins, 1)
        self.context_out = nn.Conv2d(mid_channels, context_channels, 1)
        self.num_bins = num_bins

    def forward(self, feats, camera):
        x = self.reduce(feats)
        camera = self.camera_norm(camera.float())
        depth = self.depth_out(self.depth_blocks(self.depth_gate(x, camera)))
        context = self.context_out(self.context_gate(x, camera))
        return depth, context
