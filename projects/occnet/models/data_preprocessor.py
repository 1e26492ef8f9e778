"""Batching, normalisation and padding of multi-view image queues on the model's device."""
import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor

from occnet.registry import MODELS


@MODELS.register_module()
class OccDataPreprocessor(BaseDataPreprocessor):
    """Stacks per-sample uint8 images, normalises them and pads H and W to a multiple.

    Input `data['inputs']['imgs']`: list of B uint8 tensors (T, N, 3, H, W) (RGB).
    Output `inputs['imgs']`: float (B, T, N, 3, H_pad, W_pad); padding (bottom/right) is 0
    after normalisation, so pixel coordinates and `lidar2img` stay valid.

    Args:
        mean, std: per-channel RGB statistics in 0..255 units.
        pad_size_divisor: H_pad and W_pad are multiples of it.
    """

    def __init__(self, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                 pad_size_divisor=32):
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean).view(1, 1, 1, 3, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(1, 1, 1, 3, 1, 1), False)
        self.pad_size_divisor = pad_size_divisor

    def forward(self, data, training=False):
        imgs = data['inputs']['imgs']
        if isinstance(imgs, (list, tuple)):
            imgs = torch.stack(list(imgs))
        imgs = imgs.to(self.device, non_blocking=True).float()
        imgs = (imgs - self.mean) / self.std
        height, width = imgs.shape[-2:]
        div = self.pad_size_divisor
        pad_h, pad_w = (-height) % div, (-width) % div
        if pad_h or pad_w:
            imgs = F.pad(imgs, (0, pad_w, 0, pad_h))
        return dict(inputs=dict(imgs=imgs),
                    data_samples=self.cast_data(data.get('data_samples')))
