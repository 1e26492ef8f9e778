"""torchvision ResNet as a multi-level image backbone."""
import logging

import torch
import torch.nn as nn
import torchvision
from torch.utils.checkpoint import checkpoint
from mmengine.logging import print_log
from mmengine.model import BaseModule

from occnet.models.backbones.deform_conv import ModulatedDeformConv2d
from occnet.models.backbones.pretrained import load_backbone_weights
from occnet.registry import MODELS

_ARCHS = {18: 'resnet18', 34: 'resnet34', 50: 'resnet50', 101: 'resnet101'}


@MODELS.register_module()
class TorchvisionResNet(BaseModule):
    """ResNet from torchvision returning the feature maps of selected stages.

    Args:
        depth: 18, 34, 50 or 101.
        out_indices: stages to return, 0..3 = layer1..layer4 (strides 4, 8, 16, 32).
        frozen_stages: as in mmdet: -1 trains everything, 0 freezes the stem, k freezes the
            stem and layer1..layer k (no gradient, BatchNorm in eval mode).
        norm_eval: keep BatchNorm layers in eval mode (frozen statistics) while training.
        weights: None (random init), a torchvision weights name such as
            'IMAGENET1K_V1', or a local checkpoint path.
        dcn_stages: 4 booleans, layer1..layer4: replace the 3x3 convolutions (conv2) of
            those stages' blocks by modulated deformable convolutions (the "-DCN" backbones
            use (False, False, True, True)).
        with_cp: activation checkpointing: in training, the trainable stages keep only their
            inputs and recompute their activations in the backward pass (less memory, about
            a third more backbone time). Use with `norm_eval=True` (frozen BatchNorm), as
            the baseline does: a BatchNorm in training mode would update its running
            statistics again when recomputed.
    Returns (forward):
        tuple of (B, C_i, H / s_i, W / s_i) tensors, one per `out_indices` entry.
    """

    def __init__(self, depth=50, out_indices=(3,), frozen_stages=-1, norm_eval=False,
                 weights=None, dcn_stages=(False, False, False, False), with_cp=False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if depth not in _ARCHS:
            raise ValueError(f'TorchvisionResNet depth must be one of {sorted(_ARCHS)}, '
                             f'got {depth}')
        self.arch = _ARCHS[depth]
        net = getattr(torchvision.models, self.arch)(weights=None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.out_indices = tuple(out_indices)
        # stages after the last output are not built (no dead parameters under DDP)
        self.stages = nn.ModuleList(
            [net.layer1, net.layer2, net.layer3, net.layer4][:max(self.out_indices) + 1])
        if len(dcn_stages) != 4:
            raise ValueError(f'dcn_stages needs 4 booleans (layer1..layer4), got {dcn_stages}')
        for stage, use_dcn in zip(self.stages, dcn_stages):
            if use_dcn:
                for block in stage:
                    block.conv2 = ModulatedDeformConv2d(block.conv2)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        expansion = 1 if depth < 50 else 4
        self.out_channels = [64 * 2**i * expansion for i in self.out_indices]
        self.weights = weights
        self.with_cp = with_cp
        if with_cp and not norm_eval and frozen_stages < len(self.stages):
            print_log('TorchvisionResNet: with_cp=True with norm_eval=False updates the running '
                      'statistics of BatchNorm layers twice per step (forward and recompute); '
                      'set norm_eval=True as the baseline does', logger='current',
                      level=logging.WARNING)
        self._freeze()

    def init_weights(self):
        if self.weights is None:
            return
        load_backbone_weights(self, self.arch, self.weights)

    def _freeze(self):
        if self.frozen_stages < 0:
            return
        frozen = [self.stem] + list(self.stages[:self.frozen_stages])
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, images):
        x = self.stem(images)
        outs = []
        for i, stage in enumerate(self.stages):
            needs_grad = x.requires_grad or any(p.requires_grad for p in stage.parameters())
            if self.with_cp and self.training and torch.is_grad_enabled() and needs_grad:
                x = checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
