"""Scene-class affinity losses (MonoScene, Cao and de Charette, CVPR 2022).

Both optimise, over the whole scene at once, the precision, recall and specificity of a
class's soft prediction: each term p in (0, 1] is penalised by -log(p), its binary cross-
entropy against 1.
"""
import torch
import torch.nn as nn

from occnet.descriptions import get_description
from occnet.registry import MODELS

EPS = 1e-6


def affinity_terms(prob, target):
    """-log precision - log recall - log specificity of soft predictions of one class.

    Args:
        prob: (P,) predicted probability of the class.
        target: (P,) float, 1 where the voxel is of the class.
    Returns:
        scalar; terms whose denominator is 0 (no prediction, no positive, no negative)
        are left out.
    """
    loss = prob.new_zeros(())
    hit = (prob * target).sum()
    if prob.sum() > 0:
        loss = loss - torch.log((hit / prob.sum()).clamp(min=EPS))
    if target.sum() > 0:
        loss = loss - torch.log((hit / target.sum()).clamp(min=EPS))
    negatives = (1.0 - target).sum()
    if negatives > 0:
        specificity = ((1.0 - prob) * (1.0 - target)).sum() / negatives
        loss = loss - torch.log(specificity.clamp(min=EPS))
    return loss


def _flat(logits, target, ignore_index):
    """(P, K) probabilities and (P,) labels of the non-ignored voxels."""
    probs = logits.float().softmax(1).movedim(1, -1).reshape(-1, logits.shape[1])
    target = target.reshape(-1)
    keep = target != ignore_index
    return probs[keep], target[keep]


@MODELS.register_module()
class SemanticScalLoss(nn.Module):
    """Mean over the classes present in the target of affinity_terms(p_class, target ==
    class): every class's scene-level precision, recall and specificity.

    Args:
        loss_weight: multiplier of the loss.
        ignore_index: target value excluded from the loss; None: the dataset's.
        dataset: name, OccDescription or metainfo dict of the dataset.
    """

    def __init__(self, loss_weight=1.0, ignore_index=None, dataset='openscene'):
        super().__init__()
        if ignore_index is None:
            ignore_index = get_description(dataset).ignore_index
        self.loss_weight, self.ignore_index = loss_weight, ignore_index

    def forward(self, logits, target):
        """logits (B, K, ...) channels-first, target (B, ...) long -> scalar."""
        probs, target = _flat(logits, target, self.ignore_index)
        terms = [affinity_terms(probs[:, cls], (target == cls).to(probs.dtype))
                 for cls in range(probs.shape[1]) if (target == cls).any()]
        if not terms:
            return logits.sum() * 0.0
        return self.loss_weight * torch.stack(terms).mean()


@MODELS.register_module()
class GeometryScalLoss(nn.Module):
    """affinity_terms of occupied vs free: p(occupied) = 1 - p(free), target = label != free.

    Args:
        free_index: class index of empty voxels; None: the dataset's.
        loss_weight: multiplier of the loss.
        ignore_index: target value excluded from the loss; None: the dataset's.
        dataset: name, OccDescription or metainfo dict of the dataset.
    """

    def __init__(self, free_index=None, loss_weight=1.0, ignore_index=None,
                 dataset='openscene'):
        super().__init__()
        desc = get_description(dataset)
        free_index = desc.free_index if free_index is None else free_index
        ignore_index = desc.ignore_index if ignore_index is None else ignore_index
        self.free_index, self.loss_weight, self.ignore_index = (free_index, loss_weight,
                                                                ignore_index)

    def forward(self, logits, target):
        """logits (B, K, ...) channels-first, target (B, ...) long -> scalar."""
        probs, target = _flat(logits, target, self.ignore_index)
        occupied = 1.0 - probs[:, self.free_index]
        return self.loss_weight * affinity_terms(
            occupied, (target != self.free_index).to(probs.dtype))
