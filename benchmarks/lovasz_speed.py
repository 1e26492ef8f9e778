"""How fast is the Lovasz-softmax loss? Forward + backward of LovaszSoftmaxLoss at the demo's
scale against the implementation it replaced, in the same run, plus the sort alone.

    python benchmarks/lovasz_speed.py [--repeats 7] [--kept 0.47] [--classes 9]
    python benchmarks/lovasz_speed.py --config CONFIG --checkpoint CKPT [--frames 0 40 80]

The input is what the demo's occupancy head gives the loss: (1, 12, 200, 200, 16) float32
logits (made by the head's cell-to-voxel rearrangement, so its backward is timed too) and a
target with `--classes` present classes, where a share of `--kept` of the voxels is not
ignored (camera-visible: 47% in the synthetic demo). The baseline is the loss before
2026-12-03: softmax over the whole grid, a voxel-major copy, then torch.sort of the errors
and a gather of the sorted errors through autograd. Both give the same value (checked here).
Times are the minimum over `--repeats` calls. The last line is JSON with `baseline_s`,
`loss_s`, `loss_speedup`, `torch_sort_s`, `radix_sort_s`, `sort_speedup`, and
`full_sort_s` / `pruning_speedup`: the loss when every voxel of every present class is
sorted (before 2026-12-04) against the loss, which sorts only each class's contested
voxels (`row_weights`).

With --config and --checkpoint the input is a trained model's own: the logits its occupancy
head gives the loss, and the targets, on the training frames `--frames` (train mode, no
gradient), for instance a forward-backward demo trained by benchmarks/depth_vs_bevformer.py.
Random logits leave little to prune; a trained model is sure of most voxels of most rows.
The JSON then has `full_sort_s`, `loss_s` (medians of the calls, interleaved) and
`pruning_speedup`.
"""
import argparse
import json
import os
import platform
import statistics
import time

import torch

from occnet.models.losses import lovasz_softmax
from occnet.models.losses.lovasz_softmax import (LovaszSoftmaxLoss, descending_order,
                                                  lovasz_grad)

IGNORE = 255


def baseline_loss(logits, target):
    """The replaced implementation: voxel-major probabilities of the kept voxels, one
    batched torch.sort of the present classes' errors, sorted errors gathered by autograd."""
    num_classes = logits.shape[1]
    probs = logits.softmax(1).movedim(1, -1).reshape(-1, num_classes)
    target = target.reshape(-1)
    keep = target != IGNORE
    probs, labels = probs[keep], target[keep]
    rows = torch.arange(num_classes)[torch.bincount(labels, minlength=num_classes) > 0]
    fg = (labels[None, :] == rows[:, None]).float()
    errors_sorted, order = torch.sort((fg - probs.t()[rows]).abs(), dim=1, descending=True)
    return (errors_sorted * lovasz_grad(torch.gather(fg, 1, order))).sum(1).mean()


def timed_full_sort(fn):
    """fn() with the loss's weights from full_sort_weights (every voxel of every row in one
    batched sort, as lovasz_weights was before 2026-12-04)."""
    pruned = lovasz_softmax.lovasz_weights
    lovasz_softmax.lovasz_weights = lovasz_softmax.full_sort_weights
    try:
        return fn()
    finally:
        lovasz_softmax.lovasz_weights = pruned


def captured_logits(config, checkpoint, frames):
    """[(logits, target)] that the config's Lovasz loss receives from the checkpoint's model
    on the given training frames (train mode, no gradient)."""
    from mmengine.registry import init_default_scope

    from occnet.apis import init_model
    from occnet.datasets.collate import occ_collate
    from occnet.registry import DATASETS
    model = init_model(config, checkpoint, device='cpu').train()
    init_default_scope('occnet')
    dataset = DATASETS.build(model.cfg.train_dataloader.dataset)
    captured, forward = [], LovaszSoftmaxLoss.forward

    def capture(self, logits, target):
        captured.append((logits.detach().clone(), target.clone()))
        return forward(self, logits, target)

    LovaszSoftmaxLoss.forward = capture
    try:
        with torch.no_grad():
            for frame in frames:
                model(**model.data_preprocessor(occ_collate([dataset[frame]]), True),
                      mode='loss')
    finally:
        LovaszSoftmaxLoss.forward = forward
    if not captured:
        raise SystemExit(f'{config}: its occupancy loss has no LovaszSoftmaxLoss')
    return captured


def trained_model_result(args):
    """full_sort_s and loss_s on a trained model's logits: medians of `--repeats`
    interleaved calls on each frame (a training step meets the typical call, not the
    fastest; the full sort's calls vary by up to 40% here)."""
    loss_fn = LovaszSoftmaxLoss()
    full, pruned, values = [], [], []
    for logits, target in captured_logits(args.config, args.checkpoint, args.frames):
        leaf = logits.requires_grad_()

        def step():
            loss = loss_fn(leaf, target)
            loss.backward()
            leaf.grad = None
            return loss.item()

        value, reference = step(), timed_full_sort(step)
        if abs(value - reference) > 1e-6 * abs(reference):
            raise SystemExit(f'the loss {value} differs from the full sort\'s {reference}')
        for _ in range(args.repeats):  # interleaved, so a drift of the CPU hits both
            full.append(timed_full_sort(lambda: seconds(step)))
            pruned.append(seconds(step))
        values.append(round(value, 6))
    result = dict(full_sort_s=round(statistics.median(full), 4),
                  loss_s=round(statistics.median(pruned), 4), losses=values)
    result.update(pruning_speedup=round(result['full_sort_s'] / result['loss_s'], 2),
                  config=args.config, checkpoint=args.checkpoint, frames=args.frames)
    return result


def seconds(fn):
    """Wall time of one fn() call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fastest(fn, repeats):
    """Minimum wall time of fn() over `repeats` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--kept', type=float, default=0.47,
                        help='share of voxels not ignored')
    parser.add_argument('--classes', type=int, default=9, help='present classes (<= 12)')
    parser.add_argument('--config', help="a trained model's config (with --checkpoint)")
    parser.add_argument('--checkpoint')
    parser.add_argument('--frames', type=int, nargs='+', default=[0, 40, 80],
                        help='training frames whose logits are timed')
    args = parser.parse_args()
    if bool(args.config) != bool(args.checkpoint):
        parser.error('--config and --checkpoint go together')
    if args.config:
        result = trained_model_result(args)
        result.update(hardware=f'{os.cpu_count()}-core {platform.machine()} CPU, torch '
                      f'{torch.__version__}, {torch.get_num_threads()} threads')
        print(json.dumps(result))
        return
    torch.manual_seed(0)
    cells = torch.randn(1, 100, 100, 16, 2, 2, 12, requires_grad=True)
    target = torch.randint(0, args.classes, (1, 200, 200, 16))
    target[torch.rand(target.shape) > args.kept] = IGNORE
    loss_fn = LovaszSoftmaxLoss(ignore_index=IGNORE)

    def logits():  # the heads' cells_to_voxels: (B, bx, by, Z, s, s, K) -> (B, K, X, Y, Z)
        return cells.permute(0, 6, 1, 4, 2, 5, 3).reshape(1, 12, 200, 200, 16)

    def step(fn):
        loss = fn(logits(), target)
        loss.backward()
        cells.grad = None
        return loss.item()

    value, reference = step(loss_fn), step(baseline_loss)
    if abs(value - reference) > 1e-5 * abs(reference):
        raise SystemExit(f'the loss {value} differs from the baseline {reference}')
    result = dict(baseline_s=fastest(lambda: step(baseline_loss), args.repeats),
                  loss_s=fastest(lambda: step(loss_fn), args.repeats),
                  full_sort_s=timed_full_sort(lambda: fastest(lambda: step(loss_fn),
                                                              args.repeats)))
    kept = target.reshape(-1) != IGNORE
    errors = torch.rand(args.classes, int(kept.sum()))
    result.update(
        torch_sort_s=fastest(lambda: torch.sort(errors, 1, descending=True), args.repeats),
        radix_sort_s=fastest(lambda: descending_order(errors), args.repeats))
    result = {k: round(v, 4) for k, v in result.items()}
    result.update(loss_speedup=round(result['baseline_s'] / result['loss_s'], 2),
                  pruning_speedup=round(result['full_sort_s'] / result['loss_s'], 2),
                  sort_speedup=round(result['torch_sort_s'] / result['radix_sort_s'], 2),
                  voxels_kept=int(kept.sum()), loss=round(value, 6),
                  hardware=f'{os.cpu_count()}-core {platform.machine()} CPU, torch '
                  f'{torch.__version__}, {torch.get_num_threads()} threads')
    print(json.dumps(result))


if __name__ == '__main__':
    main()
