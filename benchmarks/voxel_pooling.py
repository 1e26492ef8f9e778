"""Voxel pooling (Lift-Splat-Shoot) at full scale: plan time, forward + backward time and peak
memory of occnet's voxel_pool and of other implementations, and their agreement.

    python benchmarks/voxel_pooling.py [--repeats 3] [--device cpu|cuda] [--case voxels|bev|all]
        [--scale 1.0]

Shapes (BEVDet-like): batch 1, the 8 cameras of the synthetic OpenScene rig at 960x540,
features at stride 16 (34 x 60, C = 64), 88 depth bins of 0.5 m from 1 m; the grid
[-50, -50, -4, 50, 50, 4] m as 200x200x16 voxels ('voxels') or 200x200 BEV cells ('bev').
--scale < 1 shrinks the feature map (H, W) by that factor, for slow references.

Implementations, all on the same plan except the reference:
    voxel_pool  occnet.ops.voxel_pool: embedding_bag per output row (forward) and per feature
                row (d feats), sampled_addmm for d depth
    sparse_mm   S @ feats and S^T @ grad_out as torch.sparse CSR matmuls, sampled_addmm
    chunked     bev_pool-like: gather, scale and index_add_ 2^18 points at a time, forward
                and d feats; d depth as gathered row-wise dots
    reference   occnet.ops.voxel_pool_reference: all points' products at once, autograd
                (its time includes finding the voxels, which the others' plan holds)
Each implementation runs in its own process. Time: median of --repeats forward + backward
runs after a warm-up. Peak: in one more run, the memory high-water mark minus what was in
use before it (inputs, plan): occnet.peak_memory (resident set on CPU, max_memory_allocated
on CUDA). On CPU that run has glibc's mmap threshold fixed at 64 KiB (mallopt), so freed
blocks leave the resident set and the high-water mark follows the live tensors; the timed
runs keep glibc's defaults. Errors: largest difference from the reference's output and
gradients, relative to the reference's largest magnitude (fp32). Prints a table and, last,
one JSON line.
"""
import argparse
import ctypes
import ctypes.util
import json
import os
import platform
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from child_json import run_json  # noqa: E402

IMPLS = ('voxel_pool', 'sparse_mm', 'chunked', 'reference')
GRIDS = {'voxels': (200, 200, 16), 'bev': (200, 200, 1)}
GRID_RANGE = (-50.0, -50.0, -4.0, 50.0, 50.0, 4.0)
IMAGE_SIZE, STRIDE, DEPTH_RANGE, CHANNELS = (960, 540), 16, (1.0, 45.0, 0.5), 64
CHUNK = 2 ** 18
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def make_inputs(case, device, scale):
    """lidar2img (1, 8, 4, 4), points (1, 8, D, H, W, 3) metres, depth (1, 8, D, H, W)
    summing to 1 over D, feats (1, 8, H, W, C)."""
    import numpy as np
    import torch

    from occnet.datasets.synthetic.rig import make_rig
    from occnet.descriptions import OPENSCENE
    from occnet.geometry import lidar2img_matrix
    from occnet.models.view_transforms.frustum import frustum_points
    torch.manual_seed(0)
    cams = make_rig(np.random.default_rng(0), IMAGE_SIZE)
    num_cams = len(OPENSCENE.camera_names)
    lidar2img = torch.tensor(np.stack([lidar2img_matrix(cams[c])
                                       for c in OPENSCENE.camera_names]))[None]
    height = max(1, round(-(-IMAGE_SIZE[1] // STRIDE) * scale))
    width = max(1, round(IMAGE_SIZE[0] // STRIDE * scale))
    stride = IMAGE_SIZE[0] / width
    points = frustum_points(lidar2img, (height, width), stride, DEPTH_RANGE).to(device)
    bins = points.shape[2]
    depth = torch.randn(1, num_cams, bins, height, width, device=device).softmax(2)
    feats = torch.randn(1, num_cams, height, width, CHANNELS, device=device)
    return lidar2img, points, depth, feats


def _csr(crow, col, values, size):
    import torch
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter('ignore')
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)


def alternatives():
    """The sparse_mm and chunked implementations as autograd Functions of
    (depth, feats, plan) -> (R, C)."""
    import torch

    from occnet.ops.voxel_pooling import _gathered_dots, _sampled_dots

    class SparseMatmulPool(torch.autograd.Function):
        @staticmethod
        def forward(ctx, depth, feats, plan):
            rows = feats.reshape(-1, feats.shape[-1])
            weights = depth.reshape(-1)[plan.depth_index]
            ctx.save_for_backward(depth, feats)
            ctx.plan = plan
            return _csr(plan.out_ptr, plan.feat_index, weights,
                        (plan.out_ptr.numel() - 1, rows.shape[0])) @ rows

        @staticmethod
        def backward(ctx, grad):
            depth, feats = ctx.saved_tensors
            plan, rows = ctx.plan, feats.reshape(-1, feats.shape[-1])
            weights = depth.reshape(-1)[plan.feat_depth_index]
            grad_feats = _csr(plan.feat_ptr, plan.feat_out_index, weights,
                              (rows.shape[0], grad.shape[0])) @ grad
            grad_depth = depth.new_zeros(depth.numel()).index_copy_(
                0, plan.depth_index, _sampled_dots(plan, grad.contiguous(), rows))
            return grad_depth.view(depth.shape), grad_feats.view(feats.shape), None

    class ChunkedPool(torch.autograd.Function):
        @staticmethod
        def forward(ctx, depth, feats, plan):
            rows = feats.reshape(-1, feats.shape[-1])
            flat = depth.reshape(-1)
            out = rows.new_zeros(plan.out_ptr.numel() - 1, rows.shape[1])
            for start in range(0, plan.depth_index.numel(), CHUNK):
                part = slice(start, start + CHUNK)
                out.index_add_(0, plan.out_index[part], rows[plan.feat_index[part]]
                               * flat[plan.depth_index[part], None])
            ctx.save_for_backward(depth, feats)
            ctx.plan = plan
            return out

        @staticmethod
        def backward(ctx, grad):
            depth, feats = ctx.saved_tensors
            plan, rows = ctx.plan, feats.reshape(-1, feats.shape[-1])
            flat = depth.reshape(-1)
            grad_feats = torch.zeros_like(rows)
            for start in range(0, plan.depth_index.numel(), CHUNK):
                part = slice(start, start + CHUNK)
                grad_feats.index_add_(0, plan.feat_index[part], grad[plan.out_index[part]]
                                      * flat[plan.depth_index[part], None])
            grad_depth = depth.new_zeros(depth.numel()).index_copy_(
                0, plan.depth_index, _gathered_dots(plan, grad.contiguous(), rows))
            return grad_depth.view(depth.shape), grad_feats.view(feats.shape), None

    return {'sparse_mm': SparseMatmulPool, 'chunked': ChunkedPool}


def pool_fn(impl, points, grid_shape, plan):
    """(depth, feats) -> output of `impl`."""
    from occnet.ops import voxel_pool, voxel_pool_reference
    if impl == 'voxel_pool':
        return lambda depth, feats: voxel_pool(depth, feats, plan)
    if impl == 'reference':
        return lambda depth, feats: voxel_pool_reference(depth, feats, points, GRID_RANGE,
                                                         grid_shape)
    function = alternatives()[impl]
    return lambda depth, feats: function.apply(depth, feats, plan).view(*plan.out_shape, -1)


def measure(impl, case, device, mode, repeats, scale):
    """Runs in a child process. mode 'time': plan seconds (fresh and cached), seconds per
    forward + backward (median of `repeats`) and peak memory in MB. mode 'compare': the
    largest relative differences of every implementation from the reference."""
    import statistics
    import time

    import torch

    from occnet.ops import cached_pooling_plan, pooling_plan
    from occnet.peak_memory import peak_growth_mb, reset_peak
    grid_shape = GRIDS[case]
    lidar2img, points, depth, feats = make_inputs(case, device, scale)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)

    def timed(fn):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        return time.perf_counter() - start, result

    plan_secs = [timed(lambda: pooling_plan(points, GRID_RANGE, grid_shape)) for _ in
                 range(repeats + 1)]
    plan = plan_secs[-1][1]
    make = lambda: points  # noqa: E731
    cached_pooling_plan(lidar2img, make, GRID_RANGE, grid_shape)
    cached_sec = timed(lambda: cached_pooling_plan(lidar2img, make, GRID_RANGE, grid_shape))[0]
    grad = torch.randn(*plan.out_shape, CHANNELS, device=device)
    inputs = [depth.requires_grad_(), feats.requires_grad_()]

    def step(name):
        for t in inputs:
            t.grad = None
        out = pool_fn(name, points, grid_shape, plan)(*inputs)
        out.backward(grad)
        return [out.detach()] + [t.grad for t in inputs]

    if mode == 'compare':
        want = step('reference')
        errors = {}
        for name in IMPLS[:-1]:
            got = step(name)
            errors[name] = max(float((a - b).abs().max() / b.abs().max())
                               for a, b in zip(got, want))
        print(json.dumps(dict(errors=errors)))
        return
    step(impl)  # warm-up
    times = [timed(lambda: step(impl))[0] for _ in range(repeats)]
    if device == 'cpu':
        libc = ctypes.CDLL(ctypes.util.find_library('c'))
        libc.mallopt(M_MMAP_THRESHOLD, 2 ** 16)
        libc.malloc_trim(0)
    base = reset_peak(device)
    step(impl)
    print(json.dumps(dict(points=points[..., 0].numel(), kept=plan.depth_index.numel(),
                          out_rows=plan.out_ptr.numel() - 1,
                          plan_sec=statistics.median(t for t, _ in plan_secs[1:]),
                          cached_plan_sec=cached_sec, sec=statistics.median(times),
                          peak_mb=peak_growth_mb(device, base))))


def child(impl, case, device, mode, repeats, scale):
    return run_json(__file__, ['--device', device, '--scale', scale, '--child', impl, case,
                               mode, repeats], f'{impl} {case} {mode}')


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--case', choices=(*GRIDS, 'all'), default='all')
    parser.add_argument('--scale', type=float, default=1.0)
    parser.add_argument('--child', nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, case, mode, repeats = args.child
        measure(impl, case, args.device, mode, int(repeats), args.scale)
        return
    rows = []
    for case in (list(GRIDS) if args.case == 'all' else [args.case]):
        print(f'{case}: comparing with the reference ...', file=sys.stderr, flush=True)
        errors = child('reference', case, args.device, 'compare', 0, args.scale)['errors']
        for impl in IMPLS:
            print(f'{case}: timing {impl} ...', file=sys.stderr, flush=True)
            result = child(impl, case, args.device, 'time', args.repeats, args.scale)
            rows.append(dict(case=case, impl=impl, rel_error=errors.get(impl, 0.0), **result))
    print(f'{"case":<7} {"impl":<11} {"points":>9} {"kept":>9} {"plan s":>7} {"cached s":>9} '
          f'{"fwd+bwd s":>10} {"peak MB":>8} {"rel err":>8}')
    for r in rows:
        print(f'{r["case"]:<7} {r["impl"]:<11} {r["points"]:>9} {r["kept"]:>9} '
              f'{r["plan_sec"]:>7.3f} {r["cached_plan_sec"]:>9.5f} {r["sec"]:>10.3f} '
              f'{r["peak_mb"]:>8.0f} {r["rel_error"]:>8.1e}')
    print(json.dumps(dict(rows=rows, device=args.device, machine=platform.machine(),
                          cpus=os.cpu_count(), repeats=args.repeats, scale=args.scale)))


if __name__ == '__main__':
    main()
