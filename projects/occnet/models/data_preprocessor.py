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

    Each sample's uint8 tensor is copied to the device on its own and stacked there: stacking
    on the host first would make an unpinned copy of the DataLoader's pinned batch, whose
    transfer then blocks. The copies, and those of the data samples' tensors, are
    non-blocking.

    Args:
        mean, std: per-channel RGB statistics in 0..255 units.
        pad_size_divisor: H_pad and W_pad are multiples of it.
        non_blocking: copy to the device asynchronously (overlaps with compute when the
            DataLoader pins memory, `pin_memory=True`).
    """

    def __init__(self, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                 pad_size_divisor=32, non_blocking=True):
        super().__init__(non_blocking=non_blocking)
        self.register_buffer('mean', torch.tensor(mean).view(1, 1, 1, 3, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(1, 1, 1, 3, 1, 1), False)
        self.pad_size_divisor = pad_size_divisor

    def forward(self, data, training=False):
        imgs = data['inputs']['imgs']
        if isinstance(imgs, (list, tuple)):  # B x (T, N, 3, H, W) -> (B, T, N, 3, H, W)
            imgs = torch.stack([img.to(self.device, non_blocking=self._non_blocking)
                                for img in imgs])
        else:
            imgs = imgs.to(self.device, non_blocking=self._non_blocking)
        imgs = imgs.float()
        imgs = (imgs - self.mean) / self.std
        height, width = imgs.shape[-2:]
        div = self.pad_size_divisor
        pad_h, pad_w = (-height) % div, (-width) % div
        if pad_h or pad_w:
            imgs = F.pad(imgs, (0, pad_w, 0, pad_h))
        return dict(inputs=dict(imgs=imgs),
                    data_samples=self.cast_data(data.get('data_samples')))
