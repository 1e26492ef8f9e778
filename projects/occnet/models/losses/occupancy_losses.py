"""Per-voxel classification losses for occupancy."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from occnet.descriptions import get_description
from occnet.registry import MODELS


def _described_ignore(ignore_index, dataset):
    """ignore_index, or the dataset's when it is None."""
    return get_description(dataset).ignore_index if ignore_index is None else ignore_index


@MODELS.register_module()
class OccCrossEntropyLoss(nn.Module):
    """Softmax cross-entropy over voxels, optionally class-weighted.

    Args:
        class_weight: per-class weights (num_classes,) or None; the loss is the weighted
            mean, as `F.cross_entropy` computes it.
        loss_weight: multiplier of the loss.
        ignore_index: target value excluded from the loss; None: the dataset's.
        dataset: name, OccDescription or metainfo dict of the dataset.
    """

    def __init__(self, class_weight=None, loss_weight=1.0, ignore_index=None,
                 dataset='openscene'):
        super().__init__()
        ignore_index = _described_ignore(ignore_index, dataset)
        self.register_buffer('class_weight', None if class_weight is None else
                             torch.tensor(class_weight, dtype=torch.float32), persistent=False)
        self.loss_weight, self.ignore_index = loss_weight, ignore_index

    def forward(self, logits, target):
        """logits (B, K, ...) channels-first, target (B, ...) long -> scalar."""
        weight = None if self.class_weight is None else self.class_weight.to(logits.dtype)
        return self.loss_weight * F.cross_entropy(logits, target, weight=weight,
                                                  ignore_index=self.ignore_index)


def kept_voxels(logits, target, ignore_index):
    """(B, K, ...) logits and (B, ...) target -> (V, K) logits and (V,) target of the voxels
    whose target is not ignore_index."""
    logits = logits.movedim(1, -1).reshape(-1, logits.shape[1])
    target = target.reshape(-1)
    keep = target != ignore_index
    return logits[keep], target[keep]


@MODELS.register_module()
class OccFocalLoss(nn.Module):
    """Sigmoid focal loss over one-hot voxel classes, averaged over non-ignored voxels.

    Args:
        alpha: weight of positives (negatives get 1 - alpha); < 0 disables it.
        gamma: focusing exponent.
        loss_weight: multiplier of the loss.
        ignore_index: target value excluded from the loss; None: the dataset's.
        dataset: name, OccDescription or metainfo dict of the dataset.
    """

    def __init__(self, alpha=0.25, gamma=2.0, loss_weight=1.0, ignore_index=None,
                 dataset='openscene'):
        super().__init__()
        ignore_index = _described_ignore(ignore_index, dataset)
        self.alpha, self.gamma = alpha, gamma
        self.loss_weight, self.ignore_index = loss_weight, ignore_index

    def forward(self, logits, target):
        """logits (B, K, ...) channels-first, target (B, ...) long -> scalar."""
        logits, target = kept_voxels(logits, target, self.ignore_index)
        if target.numel() == 0:
            return logits.sum() * 0.0
        one_hot = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
        loss = sigmoid_focal_loss(logits, one_hot, alpha=self.alpha, gamma=self.gamma,
                                  reduction='sum')
        return self.loss_weight * loss / target.numel()


@MODELS.register_module()
class OccupiedFocalLoss(nn.Module):
    """The published OpenScene / OccNet baseline's sigmoid focal loss: one logit per occupied
    class (free has none), free voxels are negatives of every class (an all-zero target), and
    the sum is divided by the number of occupied voxels (mmdet's FocalLoss with
    avg_factor = occupied voxels).

    The head then has K - 1 outputs, its classifier bias starts at `prior_prob`, and a voxel
    is predicted free when its highest class probability is below `free_threshold`
    (OccupancyLosses reads these three attributes).

    Args:
        alpha: weight of positives (negatives get 1 - alpha); < 0 disables it.
        gamma: focusing exponent.
        loss_weight: multiplier of the loss.
        free_threshold: highest sigmoid probability below which a voxel is free at
            prediction (0.25 in the baseline).
        prior_prob: initial probability of every class (0.01 in the baseline).
        ignore_index: target value excluded from the loss; None: the dataset's.
        dataset: name, OccDescription or metainfo dict of the dataset (free is its last
            label, K - 1).
    """

    free_as_background = True

    def __init__(self, alpha=0.25, gamma=2.0, loss_weight=1.0, free_threshold=0.25,
                 prior_prob=0.01, ignore_index=None, dataset='openscene'):
        super().__init__()
        ignore_index = _described_ignore(ignore_index, dataset)
        if not 0.0 < free_threshold < 1.0 or not 0.0 < prior_prob < 1.0:
            raise ValueError(f'free_threshold {free_threshold} and prior_prob {prior_prob} '
                             'must lie in (0, 1)')
        self.alpha, self.gamma = alpha, gamma
        self.loss_weight, self.ignore_index = loss_weight, ignore_index
        self.free_threshold, self.prior_prob = free_threshold, prior_prob

    def forward(self, logits, target):
        """logits (B, K - 1, ...) channels-first, one per occupied class; target (B, ...)
        long with occupied classes 0..K-2, free K-1 and ignore_index -> scalar."""
        num_occupied = logits.shape[1]
        logits, target = kept_voxels(logits, target, self.ignore_index)
        # a class above num_occupied makes one_hot raise (no extra host sync here)
        one_hot = F.one_hot(target, num_occupied + 1)[:, :num_occupied].to(logits.dtype)
        loss = sigmoid_focal_loss(logits, one_hot, alpha=self.alpha, gamma=self.gamma,
                                  reduction='sum')
        occupied = (target < num_occupied).sum().clamp(min=1)
        return self.loss_weight * loss / occupied
