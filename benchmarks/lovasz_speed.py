"""How fast is the Lovasz-softmax loss? Forward + backward of LovaszSoftmaxLoss at the demo's
scale against the implementation it replaced, in the same run, plus the sort alone.

    python benchmarks/lovasz_speed.py [--repeats 7] [--kept 0.47] [--classes 9]

The input is what the demo's occupancy head gives the loss: (1, 12, 200, 200, 16) float32
logits (made by the head's cell-to-voxel rearrangement, so its backward is timed too) and a
target with `--classes` present classes, where a share of `--kept` of the voxels is not
ignored (camera-visible: 47% in the synthetic demo). The baseline is the loss before
2026-12-03: softmax over the whole grid, a voxel-major copy, then torch.sort of the errors
and a gather of the sorted errors through autograd. Both give the same value (checked here).
Times are the minimum over `--repeats` calls. The last line is JSON with `baseline_s`,
`loss_s`, `loss_speedup`, `torch_sort_s`, `radix_sort_s` and `sort_speedup`.
"""
import argparse
import json
import os
import platform
import time

import torch

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
    args = parser.parse_args()
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
                  loss_s=fastest(lambda: step(loss_fn), args.repeats))
    kept = target.reshape(-1) != IGNORE
    errors = torch.rand(args.classes, int(kept.sum()))
    result.update(
        torch_sort_s=fastest(lambda: torch.sort(errors, 1, descending=True), args.repeats),
        radix_sort_s=fastest(lambda: descending_order(errors), args.repeats))
    result = {k: round(v, 4) for k, v in result.items()}
    result.update(loss_speedup=round(result['baseline_s'] / result['loss_s'], 2),
                  sort_speedup=round(result['torch_sort_s'] / result['radix_sort_s'], 2),
                  voxels_kept=int(kept.sum()), loss=round(value, 6),
                  hardware=f'{os.cpu_count()}-core {platform.machine()} CPU, torch '
                  f'{torch.__version__}, {torch.get_num_threads()} threads')
    print(json.dumps(result))


if __name__ == '__main__':
    main()
