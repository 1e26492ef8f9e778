"""Occupancy and flow losses against values worked by hand."""
import math

import numpy as np
import pytest
import torch

from occnet.models.losses import (FlowL1Loss, GeometryScalLoss, LovaszSoftmaxLoss,
                                  SemanticScalLoss)
from occnet.models.occ_heads.occupancy_loss import OccupancyLosses, cells_to_voxels

# 3 voxels, 3 classes (class 2 plays "free"); probabilities chosen to be easy by hand
PROBS = [[0.5, 0.2, 0.3], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]
TARGET = [0, 2, 1]


def logits_of(probs):
    """(1, K, P) logits whose softmax over K is `probs` (P, K)."""
    return torch.tensor(probs, dtype=torch.float64).log().T[None]


def test_lovasz_softmax_by_hand():
    # class 1: p = [0.8, 0.3], fg = [1, 0]: errors sorted [0.3 (bg), 0.2 (fg)], Jaccard
    # gradient [0.5, 0.5] -> 0.25; class 0: errors sorted [0.3 (fg), 0.2 (bg)], gradient
    # [1, 0] -> 0.3; mean 0.275
    logits = logits_of([[0.2, 0.8], [0.7, 0.3], [0.5, 0.5]])
    target = torch.tensor([[1, 0, 255]])  # the third voxel is ignored
    assert LovaszSoftmaxLoss()(logits, target).item() == pytest.approx(0.275)
    perfect = torch.tensor([[[30.0, -30.0], [-30.0, 30.0]]]).transpose(1, 2)
    assert LovaszSoftmaxLoss()(perfect, torch.tensor([[0, 1]])).item() == pytest.approx(0.0)


def test_lovasz_batched_sort_matches_a_sort_per_class():
    # the loss sorts all classes at once; a plain loop over classes must give the same value
    # and gradients, with an absent class (3) left out under 'present' and kept under 'all'
    from occnet.models.losses.lovasz_softmax import lovasz_grad, lovasz_softmax_flat
    torch.manual_seed(0)
    probs = torch.rand(50, 5, dtype=torch.float64).softmax(1).requires_grad_()
    labels = torch.randint(0, 5, (50,))
    labels[labels == 3] = 4

    def per_class(classes):
        losses = []
        for cls in range(5):
            fg = (labels == cls).double()
            if classes == 'present' and fg.sum() == 0:
                continue
            errors, order = torch.sort((fg - probs[:, cls]).abs(), descending=True)
            losses.append(torch.dot(errors, lovasz_grad(fg[order])))
        return torch.stack(losses).mean()

    for classes in ('present', 'all'):
        batched = lovasz_softmax_flat(probs, labels, classes)
        reference = per_class(classes)
        assert batched.item() == pytest.approx(reference.item(), rel=1e-12)
        got, = torch.autograd.grad(batched, probs)
        want, = torch.autograd.grad(reference, probs)
        assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert lovasz_softmax_flat(probs, labels, 'all').item() != pytest.approx(
        lovasz_softmax_flat(probs, labels, 'present').item())


def test_radix_order_is_a_stable_descending_sort():
    # float32 on CPU takes the radix sort: ties (0.25, zeros, ones) and values that differ only
    # in the low 16 bits of their pattern must come out as torch.sort(stable=True) orders them
    from occnet.models.losses.lovasz_softmax import descending_order
    torch.manual_seed(0)
    errors = torch.rand(4, 3000)
    errors[:, :500] = 0.25
    errors[:, 500:600] = 0.0
    errors[:, 600:650] = 1.0
    errors[0, 700:710] = torch.tensor(0.5).view(torch.int32).add(
        torch.arange(10, dtype=torch.int32)).view(torch.float32)
    want = torch.sort(errors, dim=1, descending=True, stable=True)[1]
    assert torch.equal(descending_order(errors), want)
    assert torch.equal(descending_order(errors.double()), want)


def test_lovasz_loss_float32_channels_first_matches_the_voxel_loop():
    # the loss as the heads call it: (B, K, X, Y, Z) float32 logits, B = 2, ignored voxels;
    # against a class-by-class float64 loop over the kept voxels in voxel-major order
    from occnet.models.losses.lovasz_softmax import lovasz_grad
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 5, 6, 3, requires_grad=True)
    target = torch.randint(0, 3, (2, 5, 6, 3))
    target[0, 0] = 255
    loss = LovaszSoftmaxLoss()(logits, target)
    probs = logits.double().softmax(1).movedim(1, -1).reshape(-1, 4)
    labels = target.reshape(-1)
    probs, labels = probs[labels != 255], labels[labels != 255]
    terms = []
    for cls in range(3):  # class 3 is absent
        fg = (labels == cls).double()
        errors, order = torch.sort((fg - probs[:, cls]).abs(), descending=True)
        terms.append(torch.dot(errors, lovasz_grad(fg[order])))
    reference = torch.stack(terms).mean()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    got, = torch.autograd.grad(loss, logits)
    want, = torch.autograd.grad(reference, logits)
    assert torch.allclose(got, want.float(), atol=1e-6) and got[0, :, 0].abs().max() == 0


def test_lovasz_sample_ratio_scores_a_random_subset_in_training_only():
    # sample_ratio < 1: in training, the loss is the exact Lovasz-softmax of the drawn
    # voxels (the others, like ignored ones, get no gradient); in eval mode, every voxel
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 40, 30, 20, requires_grad=True)
    target = torch.randint(0, 4, (1, 40, 30, 20))
    target[0, :5] = 255
    full = LovaszSoftmaxLoss()(logits, target)
    sampled_loss = LovaszSoftmaxLoss(sample_ratio=0.25)
    assert sampled_loss.eval()(logits, target).item() == full.item()
    sampled_loss.train()
    torch.manual_seed(7)
    part = sampled_loss(logits, target)
    grad, = torch.autograd.grad(part, logits)
    touched = grad.abs().sum(1)[0] > 0  # (X, Y, Z) voxels the sampled loss reached
    assert not touched[:5].any()
    share = touched.sum().item() / (target != 255).sum().item()
    assert 0.23 < share < 0.27
    subset = torch.where(touched[None], target, torch.full_like(target, 255))
    assert part.item() == pytest.approx(LovaszSoftmaxLoss()(logits, subset).item(), rel=1e-6)
    # an IoU surrogate of a random quarter of 18,000 voxels: close to the whole one
    assert part.item() == pytest.approx(full.item(), rel=0.02)
    with pytest.raises(ValueError, match='sample_ratio'):
        LovaszSoftmaxLoss(sample_ratio=0.0)


def test_geometry_scal_by_hand():
    # p(occupied) = 1 - p(free) = [0.7, 0.2, 0.6], occupied = [1, 0, 1]
    expected = -math.log(1.3 / 1.5) - math.log(1.3 / 2) - math.log(0.8)
    loss = GeometryScalLoss(free_index=2)(logits_of(PROBS), torch.tensor([TARGET]))
    assert loss.item() == pytest.approx(expected)


def test_semantic_scal_by_hand():
    class0 = -math.log(0.5 / 0.9) - math.log(0.5) - math.log((0.9 + 0.7) / 2)
    class1 = -math.log(0.3 / 0.6) - math.log(0.3) - math.log((0.8 + 0.9) / 2)
    class2 = -math.log(0.8 / 1.5) - math.log(0.8) - math.log((0.7 + 0.6) / 2)
    loss = SemanticScalLoss(loss_weight=2.0)(logits_of(PROBS), torch.tensor([TARGET]))
    assert loss.item() == pytest.approx(2.0 * (class0 + class1 + class2) / 3)


def test_flow_l1_counts_only_the_mask():
    pred = torch.zeros(1, 2, 2, 1, 1)
    pred[0, :, 0, 0, 0] = torch.tensor([1.0, 2.0])
    pred[0, :, 1, 0, 0] = torch.tensor([100.0, 100.0])
    target = torch.zeros(1, 2, 1, 1, 2)
    mask = torch.tensor([True, False]).view(1, 2, 1, 1)
    assert FlowL1Loss()(pred, target, mask).item() == pytest.approx(1.5)
    assert FlowL1Loss()(pred, target, torch.zeros_like(mask)).item() == 0.0


def test_occupancy_losses_names_weights_and_camera_mask():
    logits = torch.randn(1, 12, 4, 4, 2, requires_grad=True)
    target = torch.randint(0, 12, (1, 4, 4, 2))
    single = OccupancyLosses(dict(type='OccCrossEntropyLoss'))(logits, target)
    assert set(single) == {'loss_occ'}
    several = OccupancyLosses([dict(type='OccFocalLoss'),
                               dict(type='LovaszSoftmaxLoss', loss_weight=0.5)])
    out = several(logits, target)
    assert set(out) == {'loss_occ_focal', 'loss_occ_lovasz'}
    assert out['loss_occ_lovasz'].item() == pytest.approx(
        0.5 * LovaszSoftmaxLoss()(logits, target).item())
    # with the camera mask, invisible voxels are ignored: changing them changes nothing
    visible = torch.zeros(1, 4, 4, 2, dtype=torch.bool)
    visible[:, :2] = True
    masked = OccupancyLosses(dict(type='OccCrossEntropyLoss'), use_camera_mask=True)
    other = target.clone()
    other[:, 2:] = (other[:, 2:] + 1) % 12
    assert masked(logits, target, visible)['loss_occ'].item() == pytest.approx(
        masked(logits, other, visible)['loss_occ'].item())
    with pytest.raises(ValueError, match='no mask_camera'):
        masked(logits, target)


def test_cells_to_voxels_puts_each_sub_cell_where_it_belongs():
    bev_h = bev_w = 2
    s, size_z, k = 2, 3, 2
    cells = torch.zeros(1, bev_h, bev_w, size_z, s * s * k)
    for bx, by, z, sx, sy, c in np.ndindex(bev_h, bev_w, size_z, s, s, k):
        cells[0, bx, by, z, (sx * s + sy) * k + c] = 100000 * bx + 10000 * by + 1000 * z \
            + 100 * sx + 10 * sy + c
    voxels = cells_to_voxels(cells, s, (4, 4, size_z))
    assert voxels.shape == (1, k, 4, 4, size_z)
    for x, y, z, c in np.ndindex(4, 4, size_z, k):
        expected = 100000 * (x // 2) + 10000 * (y // 2) + 1000 * z + 100 * (x % 2) \
            + 10 * (y % 2) + c
        assert voxels[0, c, x, y, z].item() == expected


def test_weighted_cross_entropy_by_hand():
    from occnet.models.losses import OccCrossEntropyLoss
    # voxel 0: uniform over 3 classes, label 1; voxel 1: p = (0.5, 0.25, 0.25), label 0
    logits = torch.tensor([[[0.0, math.log(2.0)], [0.0, 0.0], [0.0, 0.0]]])  # (1, K=3, P=2)
    loss = OccCrossEntropyLoss(class_weight=[2.0, 1.0, 1.0])(logits, torch.tensor([[1, 0]]))
    assert loss.item() == pytest.approx((math.log(3.0) + 2.0 * math.log(2.0)) / 3.0, rel=1e-6)


def test_sigmoid_focal_by_hand():
    from occnet.models.losses import OccFocalLoss
    # one voxel, 2 classes, logits 0 (p = 0.5 each), label 0: the positive term is
    # alpha (1 - 0.5)^2 ln 2, the negative (1 - alpha) 0.5^2 ln 2; sum 0.25 ln 2
    loss = OccFocalLoss(alpha=0.25, gamma=2.0)(torch.zeros(1, 2, 1), torch.tensor([[0]]))
    assert loss.item() == pytest.approx(0.25 * math.log(2.0), rel=1e-6)
    ignored = OccFocalLoss()(torch.zeros(1, 2, 2), torch.tensor([[0, 255]]))
    assert ignored.item() == pytest.approx(loss.item(), rel=1e-6)


def test_lovasz_weights_sort_only_the_contested_voxels_and_match_the_full_sort():
    # row 0: every outside voxel below 0.3 ranks after the class (errors 0.4-0.9): weight 0;
    # row 1: class voxels below 0.05 rank after every outside voxel: weight 1 / P each;
    # row 2: ties at the cut-offs; row 3: an absent class. Against the full sort, both dtypes
    from occnet.models.losses.lovasz_softmax import lovasz_grad, lovasz_weights
    torch.manual_seed(2)
    num = 4000
    fg = torch.zeros(4, num, dtype=torch.float64)
    fg[0, :300] = fg[1, 1000:3000] = fg[2, ::3] = 1
    errors = torch.rand(4, num, dtype=torch.float64)
    errors[0, :300] = 0.4 + 0.5 * errors[0, :300]
    errors[0, 300:3500] *= 0.3  # most outside voxels: below every class voxel
    errors[1, :1000] = 0.05 + 0.9 * errors[1, :1000]
    errors[1, 3000:] = 0.05 + 0.9 * errors[1, 3000:]
    errors[1, 1000:2500] *= 0.05  # most class voxels: below every outside voxel
    errors[2, ::7] = 0.25  # ties, inside and outside, at the lowest error of each side
    errors[2] = errors[2].clamp(min=0.25)
    assert (errors[0, 300:] < errors[0, :300].min()).sum() >= 3200
    assert (errors[1, 1000:3000] < torch.cat([errors[1, :1000], errors[1, 3000:]]).min()
            ).sum() >= 1400

    def full_sort(errors, fg):
        order = torch.sort(errors, dim=1, descending=True, stable=True)[1]
        grad = lovasz_grad(torch.gather(fg, 1, order))
        return torch.empty_like(grad).scatter_(1, order, grad)

    want = full_sort(errors, fg)
    assert torch.allclose(lovasz_weights(errors, fg), want, rtol=0, atol=1e-12)
    assert torch.allclose(want[1, 1000:2500][errors[1, 1000:2500] < 0.05 * 0.99],
                          torch.tensor(1.0 / num, dtype=torch.float64), atol=1e-12)
    assert (want[0, 300:3500] == 0).all()
    got32 = lovasz_weights(errors.float(), fg.float())  # the radix sort's path
    assert torch.allclose(got32.double(), want, rtol=0, atol=1e-6)
