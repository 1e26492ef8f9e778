"""Multi-scale deformable attention backends, forward + backward, at the baseline config's
shapes: time, peak memory, and agreement with the grid_sample reference, in one run.

    python benchmarks/msda.py [--repeats 3] [--device cpu|cuda] [--case sca|tsa|all]

Cases (baseline `bevformer-occ-tiny_r50`: 960x540 images, 1 FPN level at stride 32, BEV
200x200, 8 heads of 32 channels):
    sca  spatial cross-attention: value (8 cameras, 17x30, 8, 32); the queries are the most
         BEV pillars any camera sees (its 4 anchors projected with the OpenScene-like
         synthetic rig), 8 points
    tsa  temporal self-attention: value (batch 1; previous and current BEV as 2 levels of
         200x200, 8, 32), 40000 queries, 4 points per level
Each backend runs in its own process, so its peak memory is its own: the peak during the
timed runs minus what the inputs already used (occnet.peak_memory: resident-set high-water
mark on CPU, torch.cuda.max_memory_allocated on CUDA). Prints a table and, last, one JSON line.
"""
import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from child_json import run_json  # noqa: E402

CASES = {'sca': dict(bs=8, heads=8, dims=32, levels=1, points=8, hw=(17, 30)),
         'tsa': dict(bs=1, heads=8, dims=32, levels=2, points=4, hw=(200, 200),
                     queries=40000)}


def sca_queries():
    """Most BEV pillars one camera sees: the baseline grid's 4 anchors per pillar projected
    into 960x540 images of the synthetic rig (OpenScene camera layout)."""
    import numpy as np
    import torch

    from occnet.datasets.synthetic.rig import make_rig
    from occnet.descriptions import OPENSCENE
    from occnet.geometry import lidar2img_matrix
    from occnet.models.bev_encoders.bev_grid import pillar_reference_points, project_to_cameras
    cams = make_rig(np.random.default_rng(0), (960, 540))
    lidar2img = torch.tensor(np.stack([lidar2img_matrix(cams[c])
                                       for c in OPENSCENE.camera_names]))[None]
    anchors = pillar_reference_points(200, 200, 4, OPENSCENE.point_cloud_range)
    _, visible = project_to_cameras(anchors, lidar2img, torch.tensor([[540, 960]]), (544, 960))
    return int(visible.any(-1).sum(-1).max())


def measure(backend, case, device, mode, repeats):
    """Runs in a child process. mode 'time': seconds per forward + backward (median of
    `repeats`) and peak memory in MB. Modes 'compare32' and 'compare64': the largest
    difference of the output and the three gradients from the reference backend's, in fp32
    (relative to each tensor's largest magnitude: fp32 sums in another order differ by
    rounding) and in fp64 (absolute: the same function gives about 1e-12)."""
    import statistics
    import time

    import torch

    from occnet.ops import multi_scale_deformable_attn
    from occnet.peak_memory import peak_growth_mb, reset_peak
    torch.manual_seed(0)
    if mode == 'compare64':
        torch.set_default_dtype(torch.float64)
    spec = CASES[case]
    queries = spec.get('queries') or sca_queries()
    height, width = spec['hw']
    shape = (spec['bs'], queries, spec['heads'], spec['levels'], spec['points'])
    shapes = [(height, width)] * spec['levels']
    value = torch.randn(spec['bs'], height * width * spec['levels'], spec['heads'], spec['dims'],
                        device=device)
    locations = torch.rand(*shape, 2, device=device)
    weights = torch.rand(*shape, device=device).softmax(-1)
    grad = torch.randn(spec['bs'], queries, spec['heads'] * spec['dims'], device=device)
    inputs = [t.requires_grad_() for t in (value, locations, weights)]

    def step(name):
        for t in inputs:
            t.grad = None
        out = multi_scale_deformable_attn(inputs[0], shapes, inputs[1], inputs[2],
                                          backend=name)
        out.backward(grad)
        return [out.detach()] + [t.grad for t in inputs]

    if mode.startswith('compare'):
        got = [t.clone() for t in step(backend)]
        want = step('pytorch')
        if mode == 'compare64':
            error = max(float((a - b).abs().max()) for a, b in zip(got, want))
        else:
            error = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, want))
        print(json.dumps(dict(error=error)))
        return
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    base = reset_peak(device)
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        sync()
        start = time.perf_counter()
        step(backend)
        sync()
        times.append(time.perf_counter() - start)
    print(json.dumps(dict(queries=queries, sec=statistics.median(times[1:]),
                          peak_mb=peak_growth_mb(device, base))))


def child(backend, case, device, mode, repeats):
    return run_json(__file__, ['--device', device, '--child', backend, case, mode, repeats],
                    f'{backend} {case} {mode}')


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--case', choices=('sca', 'tsa', 'all'), default='all')
    parser.add_argument('--child', nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, case, mode, repeats = args.child
        measure(backend, case, args.device, mode, int(repeats))
        return
    fast = 'cpu' if args.device == 'cpu' else 'triton'
    rows = []
    for case in (list(CASES) if args.case == 'all' else [args.case]):
        ref = child('pytorch', case, args.device, 'time', args.repeats)
        new = child(fast, case, args.device, 'time', args.repeats)
        errors = {mode: child(fast, case, args.device, mode, 0)['error']
                  for mode in ('compare32', 'compare64')}
        rows.append(dict(case=case, backend=fast, queries=new['queries'], sec=new['sec'],
                         ref_sec=ref['sec'], speedup=ref['sec'] / new['sec'],
                         peak_mb=new['peak_mb'], ref_peak_mb=ref['peak_mb'],
                         memory_ratio=new['peak_mb'] / ref['peak_mb'],
                         rel_error_fp32=errors['compare32'], abs_error_fp64=errors['compare64']))
    print(f'{"case":<5} {"backend":<8} {"queries":>7} {"s (ref)":>15} {"speed-up":>9} '
          f'{"peak MB (ref)":>17} {"mem ratio":>10} {"rel err fp32":>13} {"err fp64":>9}')
    for r in rows:
        print(f'{r["case"]:<5} {r["backend"]:<8} {r["queries"]:>7} '
              f'{r["sec"]:>6.3f} ({r["ref_sec"]:.3f}) {r["speedup"]:>8.2f}x '
              f'{r["peak_mb"]:>7.0f} ({r["ref_peak_mb"]:>6.0f}) {r["memory_ratio"]:>10.2f} '
              f'{r["rel_error_fp32"]:>13.1e} {r["abs_error_fp64"]:>9.1e}')
    print(json.dumps(dict(rows=rows, device=args.device, machine=platform.machine(),
                          cpus=os.cpu_count(), repeats=args.repeats)))


if __name__ == '__main__':
    main()
