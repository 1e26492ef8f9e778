"""Lovasz-softmax loss (Berman et al., CVPR 2018): a convex surrogate of per-class IoU."""
import torch
import torch.nn as nn

from occnet.descriptions import get_description
from occnet.registry import MODELS


def lovasz_grad(gt_sorted):
    """Gradient of the Jaccard loss w.r.t. sorted errors, per row.

    Args:
        gt_sorted: (..., P) float, 1 where the voxel belongs to the class, each row sorted by
            decreasing error.
    Returns:
        (..., P) weights: the increase of 1 - IoU as each voxel in turn is counted as wrong.
    """
    total = gt_sorted.sum(-1, keepdim=True)
    intersection = total - gt_sorted.cumsum(-1)
    union = total + (1.0 - gt_sorted).cumsum(-1)
    jaccard = 1.0 - intersection / union
    if gt_sorted.shape[-1] > 1:
        jaccard = torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], -1)
    return jaccard


def lovasz_softmax_flat(probs, labels, classes='present'):
    """Mean over classes of the Lovasz extension of 1 - IoU.

    The classes are sorted in one batched sort (a row of P errors per class; under
    'present' only the present classes' rows, as the sort is most of the cost): 1.5x faster
    on CPU than a sort per class, same values.

    Args:
        probs: (P, K) class probabilities of P voxels.
        labels: (P,) long in [0, K).
        classes: 'present' (classes that occur in `labels`) or 'all'.
    Returns:
        scalar tensor (0 when there is nothing to average).
    """
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    rows = torch.arange(probs.shape[1], device=probs.device)
    if classes == 'present':
        rows = rows[torch.bincount(labels, minlength=probs.shape[1]) > 0]
    fg = (labels[None, :] == rows[:, None]).to(probs.dtype)  # (K', P)
    errors_sorted, order = torch.sort((fg - probs.t()[rows]).abs(), dim=1, descending=True)
    return (errors_sorted * lovasz_grad(torch.gather(fg, 1, order))).sum(1).mean()


@MODELS.register_module()
class LovaszSoftmaxLoss(nn.Module):
    """Lovasz-softmax over the non-ignored voxels of the batch.

    Args:
        classes: 'present' or 'all' (see lovasz_softmax_flat).
        loss_weight: multiplier of the loss.
        ignore_index: target value excluded from the loss; None: the dataset's.
        dataset: name, OccDescription or metainfo dict of the dataset.
    """

    def __init__(self, classes='present', loss_weight=1.0, ignore_index=None,
                 dataset='openscene'):
        super().__init__()
        if classes not in ('present', 'all'):
            raise ValueError(f"classes must be 'present' or 'all', got {classes!r}")
        if ignore_index is None:
            ignore_index = get_description(dataset).ignore_index
        self.classes, self.loss_weight, self.ignore_index = classes, loss_weight, ignore_index

    def forward(self, logits, target):
        """logits (B, K, ...) channels-first, target (B, ...) long -> scalar."""
        probs = logits.float().softmax(1).movedim(1, -1).reshape(-1, logits.shape[1])
        target = target.reshape(-1)
        keep = target != self.ignore_index
        return self.loss_weight * lovasz_softmax_flat(probs[keep], target[keep], self.classes)
