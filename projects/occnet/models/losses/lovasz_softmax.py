"""Lovasz-softmax loss (Berman et al., CVPR 2018): a convex surrogate of per-class IoU."""
import numpy as np
import torch
import torch.nn as nn

from occnet.descriptions import get_description
from occnet.registry import MODELS


def lovasz_grad(gt_sorted, total=None):
    """Gradient of the Jaccard loss w.r.t. sorted errors, per row.

    Args:
        gt_sorted: (..., P) float, 1 where the voxel belongs to the class, each row sorted by
            decreasing error.
        total: the class's voxel count when gt_sorted is the head of a longer sorted row
            (the rest of it is not needed for these weights); None: gt_sorted.sum(-1).
    Returns:
        (..., P) weights: the increase of 1 - IoU as each voxel in turn is counted as wrong.
    """
    if total is None:
        total = gt_sorted.sum(-1, keepdim=True)
    intersection = total - gt_sorted.cumsum(-1)
    union = total + (1.0 - gt_sorted).cumsum(-1)
    jaccard = 1.0 - intersection / union
    if gt_sorted.shape[-1] > 1:
        jaccard = torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], -1)
    return jaccard


def descending_order(errors):
    """(R, P) errors >= 0 -> (R, P) long: each row's indices by decreasing error, equal
    errors in index order (a stable sort).

    float32 on CPU: a two-pass radix sort of the bit patterns (a non-negative float orders as
    its bits read as an unsigned integer, and numpy's stable argsort of 16-bit keys is a
    radix sort), low half first, then high half. Same order as torch.sort(stable=True), 2-3x
    faster on (9, 300k) (benchmarks/lovasz_speed.py). Elsewhere: torch.sort.
    """
    if errors.device.type != 'cpu' or errors.dtype != torch.float32:
        return torch.sort(errors, dim=1, descending=True, stable=True)[1]
    key = np.uint32(0xFFFFFFFF) - errors.detach().contiguous().numpy().view(np.uint32)
    order = torch.from_numpy(np.argsort((key & 0xFFFF).astype(np.uint16), 1, kind='stable'))
    high = torch.from_numpy((key >> 16).astype(np.uint16).view(np.int16))  # gather: bitwise
    high = torch.gather(high, 1, order).numpy().view(np.uint16)
    return torch.gather(order, 1, torch.from_numpy(np.argsort(high, 1, kind='stable')))


def lovasz_weights(errors, fg):
    """(R, P) errors >= 0 and fg (1 where the voxel belongs to the row's class) -> (R, P)
    constant weights: each voxel's lovasz_grad at its rank by decreasing error. The Lovasz
    extension is then (errors * weights).sum(-1), and its gradient flows through `errors`
    alone, without a sort or gather in the backward pass.

    On the CPU each row sorts only its contested voxels (row_weights: the same weights,
    found with data-dependent sizes). Elsewhere one batched sort of every voxel, which
    needs no host synchronisation."""
    with torch.no_grad():
        errors = errors.detach()
        if errors.device.type != 'cpu':
            return full_sort_weights(errors, fg)
        weights = torch.empty_like(errors)
        for row in range(errors.shape[0]):
            weights[row] = row_weights(errors[row], fg[row])
        return weights


def full_sort_weights(errors, fg):
    """lovasz_weights from one batched sort of every voxel of every row: (R, P) -> (R, P)."""
    with torch.no_grad():
        order = descending_order(errors.detach())
        grad = lovasz_grad(torch.gather(fg, 1, order))
        return torch.empty_like(grad).scatter_(1, order, grad)


def row_weights(errors, fg):
    """lovasz_weights of one class: (P,) errors >= 0 and fg (1 in the class) -> (P,).

    Only the contested voxels are sorted. With T voxels in the class and B outside:
    - a voxel outside the class whose error is below every class voxel's error ranks after
      all of them, where the intersection is already 0 and 1 - IoU stays 1: weight 0;
    - a class voxel whose error is below every outside voxel's ranks after all of those,
      where the union is T + B: each raises 1 - IoU by 1 / (T + B).
    (Both kinds cannot occur in one row.) The rest keep their order of the full sort, so
    lovasz_grad over them, with the class total T, gives the same weights. A trained model
    is sure of most voxels of a rare class's row, so the sort shrinks from P voxels to the
    few it gets wrong or nearly wrong.
    """
    inside = fg > 0
    total = int(inside.sum())
    if total == 0 or total == errors.numel():  # nothing to compare against: sort it all
        return full_sort_weights(errors[None], fg[None])[0]
    lowest_inside = errors[inside].min()
    lowest_outside = errors[~inside].min()
    contested = torch.where(inside, errors >= lowest_outside, errors >= lowest_inside)
    weights = torch.zeros_like(errors)
    weights[inside & ~contested] = 1.0 / errors.numel()
    index = contested.nonzero()[:, 0]
    order = index[descending_order(errors[index][None])[0]]
    weights[order] = lovasz_grad(fg[order], float(total))
    return weights


def lovasz_softmax_flat(probs, labels, classes='present'):
    """Mean over classes of the Lovasz extension of 1 - IoU.

    The classes are ranked in one batched sort (a row of P errors per class; under
    'present' only the present classes' rows, as the sort is most of the cost).

    Args:
        probs: (P, K) class probabilities of P voxels (a transposed (K, P) view is read
            without a copy).
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
    errors = (fg - probs.t()[rows]).abs()
    return (errors * lovasz_weights(errors, fg)).sum(1).mean()


@MODELS.register_module()
class LovaszSoftmaxLoss(nn.Module):
    """Lovasz-softmax over the non-ignored voxels of the batch.

    Args:
        classes: 'present' or 'all' (see lovasz_softmax_flat).
        loss_weight: multiplier of the loss.
        ignore_index: target value excluded from the loss; None: the dataset's.
        dataset: name, OccDescription or metainfo dict of the dataset.
        sample_ratio: in (0, 1]; below 1, each call scores a uniformly random share of the
            non-ignored voxels (drawn from torch's global generator, so a seeded run
            repeats), not all of them: the IoU surrogate of a random subset, at that share
            of the sort's cost. 1 (the published loss): every voxel.
    """

    def __init__(self, classes='present', loss_weight=1.0, ignore_index=None,
                 dataset='openscene', sample_ratio=1.0):
        super().__init__()
        if classes not in ('present', 'all'):
            raise ValueError(f"classes must be 'present' or 'all', got {classes!r}")
        if not 0.0 < sample_ratio <= 1.0:
            raise ValueError(f'sample_ratio must be in (0, 1], got {sample_ratio!r}')
        if ignore_index is None:
            ignore_index = get_description(dataset).ignore_index
        self.classes, self.loss_weight, self.ignore_index = classes, loss_weight, ignore_index
        self.sample_ratio = sample_ratio

    def forward(self, logits, target):
        """logits (B, K, ...) channels-first, target (B, ...) long -> scalar.

        The logits stay class-major, (K, B * voxels), a view when B = 1: the kept voxels'
        columns are selected first and the softmax runs over them only, with no voxel-major
        copy of the whole grid. In training with sample_ratio < 1 a random share of them;
        in eval mode all of them, so a reported loss does not depend on the draw."""
        num_classes = logits.shape[1]
        target = target.reshape(-1)
        kept = (target != self.ignore_index).nonzero()[:, 0]
        if self.sample_ratio < 1.0 and self.training:
            drawn = torch.rand(kept.shape[0], device=kept.device) < self.sample_ratio
            kept = kept[drawn]
        logits = logits.float().transpose(0, 1).reshape(num_classes, -1).index_select(1, kept)
        return self.loss_weight * lovasz_softmax_flat(logits.softmax(0).t(), target[kept],
                                                      self.classes)
