"""Lovasz-softmax loss (Berman et al., CVPR 2018): a convex surrogate of per-class IoU."""
import torch
import torch.nn as nn

from occnet.descriptions import get_description
from occnet.registry import MODELS


def lovasz_grad(gt_sorted):
    """Gradient of the Jaccard loss w.r.t. sorted errors.

    Args:
        gt_sorted: (P,) float, 1 where the voxel belongs to the class, sorted by
            decreasing error.
    Returns:
        (P,) weights: the increase of 1 - IoU as each voxel in turn is counted as wrong.
    """
    total = gt_sorted.sum()
    intersection = total - gt_sorted.cumsum(0)
    union = total + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def lovasz_softmax_flat(probs, labels, classes='present'):
    """Mean over classes of the Lovasz extension of 1 - IoU.

    Args:
        probs: (P, K) class probabilities of P voxels.
        labels: (P,) long in [0, K).
        classes: 'present' (classes that occur in `labels`) or 'all'.
    Returns:
        scalar tensor (0 when there is nothing to average).
    """
    losses = []
    for cls in range(probs.shape[1]):
        fg = (labels == cls).to(probs.dtype)
        if classes == 'present' and fg.sum() == 0:
            continue
        errors = (fg - probs[:, cls]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[order])))
    if not losses:
        return probs.sum() * 0.0
    return torch.stack(losses).mean()


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
