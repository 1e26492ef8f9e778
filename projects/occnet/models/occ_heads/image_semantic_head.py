"""Per-pixel semantics of the image features: the semantic half of FB-OCC's joint
depth-semantic pretraining of the image side, supervised by the sparse labels of
`DepthMapsFromPoints(with_semantics=True)`."""
import torch
import torch.nn.functional as F
from torch import nn

from occnet.descriptions import get_description
from occnet.registry import MODELS


@MODELS.register_module()
class ImageSemanticHead(nn.Module):
    """3x3 conv, BatchNorm, ReLU, then a 1x1 conv to the class logits of every feature pixel
    of one neck level; trained by class-weighted cross-entropy on the cells that hold a
    labelled LiDAR return. An auxiliary head: it makes no occupancy prediction, and a
    checkpoint's image side is kept without it (benchmarks/fbocc_trials/checkpoint_parts.py
    keep).

    Args:
        in_channels: channels of the neck level.
        mid_channels: channels of the 3x3 conv.
        level: index of the neck level it reads; its stride must be DepthMapsFromPoints'.
        class_weight: optional (free_index,) weight of each label 0..free_index - 1.
        loss_weight: factor on the loss.
        dataset: name, OccDescription or metainfo dict: labels 0..free_index - 1 are the
            classes, ignore_index marks cells without a target.
    Shapes:
        forward(mlvl_feats: list of (B, N, C, h_l, w_l)) -> (B * N, K, h, w) logits
        loss(logits, semantic_maps (B * N, h, w) uint8) -> scalar
    """

    def __init__(self, in_channels, mid_channels=64, level=0, class_weight=None,
                 loss_weight=1.0, dataset='openscene'):
        super().__init__()
        description = get_description(dataset)
        self.num_classes, self.ignore_index = description.free_index, description.ignore_index
        self.level, self.loss_weight = level, loss_weight
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels), nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, self.num_classes, 1))
        if class_weight is not None and len(class_weight) != self.num_classes:
            raise ValueError(f'class_weight has {len(class_weight)} values; the image labels '
                             f'are 0..{self.num_classes - 1} ({self.num_classes} values, '
                             'free excluded)')
        self.register_buffer('class_weight', None if class_weight is None else
                             torch.as_tensor(class_weight, dtype=torch.float32),
                             persistent=False)

    def forward(self, mlvl_feats):
        feats = mlvl_feats[self.level]
        return self.conv(feats.flatten(0, 1))

    def loss(self, logits, semantic_maps):
        if semantic_maps.shape[-2:] != logits.shape[-2:]:
            raise ValueError(f'semantic_maps are {tuple(semantic_maps.shape[-2:])} cells but '
                             f'neck level {self.level} has {tuple(logits.shape[-2:])}: set '
                             "DepthMapsFromPoints' stride to that level's stride")
        target = semantic_maps.long()
        if not (target != self.ignore_index).any():  # no labelled cell: zero, with a graph
            return logits.sum() * 0.0
        with torch.autocast(logits.device.type, enabled=False):
            loss = F.cross_entropy(logits.float(), target, weight=self.class_weight,
                                   ignore_index=self.ignore_index)
        return self.loss_weight * loss
