"""Modulated deformable convolution (DCNv2, Zhu et al. 2019) on torchvision's deform_conv2d."""
import torch
import torch.nn as nn
from torchvision.ops import deform_conv2d


class ModulatedDeformConv2d(nn.Module):
    """A drop-in replacement of a k x k nn.Conv2d whose sampling grid is shifted per output
    pixel by learned offsets and weighted by learned masks in (0, 1).

    `conv_offset` predicts, per output pixel, 2 * k * k offsets (pixels, (dy, dx) per kernel
    tap in torchvision's layout) and k * k mask logits. It starts at zero: no offset and masks
    of 0.5. The main `weight` (and bias) keep the names of the conv they replace, so ImageNet
    weights of a plain ResNet load into them.

    Args:
        conv: the nn.Conv2d to replace (its weight, stride, padding and dilation are kept).
    """

    def __init__(self, conv):
        super().__init__()
        if conv.groups != 1:
            raise ValueError('ModulatedDeformConv2d replaces convolutions with groups=1 only')
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        taps = conv.kernel_size[0] * conv.kernel_size[1]
        self.conv_offset = nn.Conv2d(conv.in_channels, 3 * taps, conv.kernel_size,
                                     conv.stride, conv.padding, conv.dilation)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x):
        """x (B, C_in, H, W) -> (B, C_out, H', W') as the replaced conv."""
        out = self.conv_offset(x)
        taps = out.shape[1] // 3
        offset, mask = out[:, :2 * taps], torch.sigmoid(out[:, 2 * taps:])
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding,
                             self.dilation, mask)
