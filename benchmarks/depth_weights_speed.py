"""How fast is the forward-backward model's depth weight read? `anchor_depth_weights` (one
trilinear grid_sample) against `anchor_depth_weights_reference` (FB-OCC's four bilinear
gathers), forward and backward, in the same run, at the forward-backward demo's shapes.

    python benchmarks/depth_weights_speed.py [--repeats 15] [--queries 3000]

Shapes (configs/fbocc/fbocc-demo_...): 8 cameras, 24 depth bins, an 18x32 feature map
(256x144 images at stride 8), 6 anchors per pillar, `--queries` selected queries per camera
(the 100x100 BEV's pillars that hit a camera, padded to the most per camera), relative
weights as the demo. Anchors are random, 20% of them off the map, depths from 0 to 60 m.
Both reads give the same weights (checked here, and in tests/test_fbocc.py). Times are the
median over `--repeats` calls after two warm-ups, the two reads interleaved call by call.
The last line is JSON with `reference_s`, `grid_sample_s` and `speedup`.
"""
import argparse
import json
import platform
import statistics
import time

import torch

from occnet.models.bev_encoders.depth_aware_attention import (anchor_depth_weights,
                                                              anchor_depth_weights_reference)

DEPTH_RANGE = (1.0, 49.0, 2.0)


def inputs(queries, cameras=8, bins=24, height=18, width=32, anchors=6):
    """(depth_probs (N, D, H, W) requiring grad, ref (N, L, A, 2), depth (N, L, A))."""
    torch.manual_seed(0)
    probs = torch.randn(cameras, bins, height, width).softmax(1).requires_grad_(True)
    ref = torch.rand(cameras, queries, anchors, 2) * 1.25 - 0.125  # 20% off the map
    depth = torch.rand(cameras, queries, anchors) * 60
    return probs, ref, depth


def step(read, probs, ref, depth, upstream):
    """One forward and backward of `read`; the gradient is zeroed after."""
    weight = read(probs, ref, depth, DEPTH_RANGE, relative=True)
    weight.backward(upstream)
    probs.grad = None
    return weight.detach()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--queries', type=int, default=3000,
                        help='selected queries per camera')
    args = parser.parse_args()
    probs, ref, depth = inputs(args.queries)
    upstream = torch.randn(depth.shape)
    reads = dict(reference=anchor_depth_weights_reference, grid_sample=anchor_depth_weights)
    weights = {name: step(read, probs, ref, depth, upstream) for name, read in reads.items()}
    max_diff = float((weights['grid_sample'] - weights['reference']).abs().max())
    if max_diff > 1e-5:
        raise SystemExit(f'the two reads differ by {max_diff:.2e}: fix anchor_depth_weights')
    times = {name: [] for name in reads}
    for repeat in range(args.repeats + 2):
        for name, read in reads.items():
            start = time.perf_counter()
            step(read, probs, ref, depth, upstream)
            if repeat >= 2:
                times[name].append(time.perf_counter() - start)
    result = {f'{name}_s': round(statistics.median(t), 5) for name, t in times.items()}
    result['speedup'] = round(result['reference_s'] / result['grid_sample_s'], 2)
    result['max_abs_diff'] = max_diff
    print(f'depth weights, forward + backward, {tuple(depth.shape)} anchors: four gathers '
          f'{result["reference_s"]:.4f} s, grid_sample {result["grid_sample_s"]:.4f} s '
          f'({result["speedup"]}x); {platform.processor() or platform.machine()}, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}')
    print(json.dumps(result))


if __name__ == '__main__':
    main()
