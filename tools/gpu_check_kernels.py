"""The deformable attention items of tools/gpu_check.py, in a child process of their own:
the device and its backends, parity with the float64 reference, forward + backward speed.

    python tools/gpu_check_kernels.py --device cuda|cpu [--smoke]

reads one JSON item per line on stdin ({"section": "device" | "parity" | "speed", "case",
"dtype", "backend"}) and answers each with one stdout line: RESULT followed by JSON with
`status` ('done', 'passed', 'failed', 'error') and the measurements. tools/gpu_check.py
starts it with OCCNET_MSDA_SELF_CHECK=0, so 'triton' runs the Triton kernels even where
their self-check would have swapped in the reference.
"""
import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
import traceback

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.msda import CASES, sca_queries  # noqa: E402
from occnet.ops import BACKENDS, msda_triton, multi_scale_deformable_attn  # noqa: E402
from occnet.ops import resolve_backend  # noqa: E402
from occnet.peak_memory import peak_growth_mb, reset_peak  # noqa: E402

RESULT = 'GPU_CHECK_RESULT '  # prefix of the result lines (other output may share stdout)
# max |got - ref| / max |ref| per tensor: fp32 sums in another order give ~1e-6; one bf16
# rounding of an input or the output is up to 4e-3 of the largest value
TOLERANCES = {'fp32': 1e-4, 'bf16': 2e-2}
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}
OUTPUTS = ('output', 'grad_value', 'grad_locations', 'grad_weights')


def kernel_spec(case, smoke):
    """benchmarks/msda.py's case; in smoke its levels and points on a few tiny maps."""
    spec = dict(CASES[case])
    if smoke:
        spec.update(bs=min(spec['bs'], 2), heads=2, dims=8, queries=16,
                    hw=tuple(max(4, s // 8) for s in spec['hw']))
    elif 'queries' not in spec:
        spec['queries'] = cached_sca_queries()
    return spec


cached_sca_queries = functools.cache(sca_queries)  # projects the BEV grid: seconds


def kernel_inputs(spec, dtype, device, seed=0):
    """Random inputs rounded to `dtype`: level shapes [(H, W)] * L and value (bs, L*H*W,
    heads, dims), locations (bs, Q, heads, L, P, 2) in [-0.1, 1.1) (some off the map),
    weights (bs, Q, heads, L, P), grad_out (bs, Q, heads * dims)."""
    gen = torch.Generator().manual_seed(seed)
    bs, queries, heads, levels = spec['bs'], spec['queries'], spec['heads'], spec['levels']
    height, width = spec['hw']
    shape = (bs, queries, heads, levels, spec['points'])
    value = torch.randn(bs, height * width * levels, heads, spec['dims'], generator=gen)
    locations = torch.rand(*shape, 2, generator=gen) * 1.2 - 0.1
    weights = torch.rand(*shape, generator=gen).softmax(-1)
    grad_out = torch.randn(bs, queries, heads * spec['dims'], generator=gen)
    tensors = [t.to(device, dtype) for t in (value, locations, weights, grad_out)]
    return [(height, width)] * levels, tensors


# other tiles of the 'triton' kernels for the speed section, named backend@tile: queries per
# program x warps (the default is 16 queries of 32 channels on 4 warps; q1w1 is one query on
# one warp, as the first kernels were)
TILES = {'q1w1': dict(block_c_elements=32, num_warps=1),
         'q8w2': dict(block_c_elements=256, num_warps=2),
         'q32w4': dict(block_c_elements=1024, num_warps=4),
         'q32w8': dict(block_c_elements=1024, num_warps=8)}


def forward_backward(backend, shapes, value, locations, weights, grad_out):
    """[output, grad value, grad locations, grad weights] of one forward + backward.
    `backend` may name a tile of the Triton kernels: 'triton@q32w4' (TILES)."""
    backend, _, tile = backend.partition('@')
    default = dict(msda_triton.TILE)
    msda_triton.TILE.update(TILES[tile] if tile else {})
    try:
        leaves = [t.detach().requires_grad_() for t in (value, locations, weights)]
        out = multi_scale_deformable_attn(leaves[0], shapes, leaves[1], leaves[2],
                                          backend=backend)
        out.backward(grad_out)
    finally:
        msda_triton.TILE.update(default)
    return [out.detach()] + [t.grad for t in leaves]


def finite_or_none(x):
    x = float(x)
    return x if x == x and abs(x) != float('inf') else None


def device_item(item, device, smoke, cache):
    """The device, the library versions and which backends run on it (None) or why not."""
    probe = torch.zeros(1, 1, 1, 1, device=device)
    backends = {}
    for name in BACKENDS:
        if name == 'auto':
            continue
        try:
            resolve_backend(probe, name)
            backends[name] = None
        except ValueError as err:
            backends[name] = str(err)
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    info = dict(torch=torch.__version__, triton=triton_version, cuda=torch.version.cuda,
                triton_interpret=os.environ.get('TRITON_INTERPRET') == '1', backends=backends)
    if device == 'cuda':
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, capability='%d.%d' % (props.major, props.minor),
                    memory_gb=round(props.total_memory / 2 ** 30, 1))
    else:
        info.update(name=cpu_name(), threads=torch.get_num_threads())
    return dict(status='done', **info)


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            model = next(line.split(':', 1)[1].strip() for line in f
                         if line.startswith('model name'))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f'{model}, {os.cpu_count()} cores'


def parity_item(item, device, smoke, cache):
    """A backend against the float64 reference on the same dtype-rounded inputs."""
    key = (item['case'], item['dtype'])
    if key not in cache:
        cache.clear()  # one reference at a time: items run case by case, dtype by dtype
        shapes, inputs = kernel_inputs(kernel_spec(item['case'], smoke),
                                       DTYPES[item['dtype']], device)
        cache[key] = shapes, inputs, forward_backward('pytorch', shapes,
                                                      *[t.double() for t in inputs])
    shapes, inputs, reference = cache[key]
    got = forward_backward(item['backend'], shapes, *[t.clone() for t in inputs])  # may write
    errors = {}
    for name, tensor, ref in zip(OUTPUTS, got, reference):
        if tensor is None or tensor.shape != ref.shape:
            raise ValueError(f'{name} of {item["backend"]} has shape '
                             f'{None if tensor is None else tuple(tensor.shape)}, the '
                             f'reference {tuple(ref.shape)}')
        diff = (tensor.double() - ref).abs().max()
        errors[name] = dict(max_abs=finite_or_none(diff),
                            max_rel=finite_or_none(diff / ref.abs().max()))
    tolerance = TOLERANCES[item['dtype']]
    passed = all(e['max_rel'] is not None and e['max_rel'] <= tolerance for e in errors.values())
    return dict(status='passed' if passed else 'failed', tolerance=tolerance, errors=errors)


def speed_item(item, device, smoke, cache):
    """Median ms of an fp32 forward + backward (3 to 20 runs, ~3 s) and the peak memory
    growth while timing (MB; the resident set's on CPU)."""
    cache.clear()  # the last parity reference: freed, so the timings run on an idle heap
    spec = kernel_spec(item['case'], smoke)
    shapes, inputs = kernel_inputs(spec, torch.float32, device)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    forward_backward(item['backend'], shapes, *inputs)  # compiles kernels, fills caches
    sync()
    base = reset_peak(device)
    times, stop = [], time.perf_counter() + (1 if smoke else 3)
    while len(times) < (1 if smoke else 3) or (len(times) < 20 and time.perf_counter() < stop):
        start = time.perf_counter()
        forward_backward(item['backend'], shapes, *inputs)
        sync()
        times.append(time.perf_counter() - start)
    return dict(status='done', queries=spec['queries'], ms=1e3 * statistics.median(times),
                repeats=len(times), peak_mb=peak_growth_mb(device, base))


KERNEL_ITEMS = dict(device=device_item, parity=parity_item, speed=speed_item)


def worker(device, smoke):
    """Answer each JSON item read from stdin with one RESULT line. After an error that
    leaves CUDA unusable (an illegal address sticks to the context), ask for a new process."""
    cache = {}
    for line in sys.stdin:
        item = json.loads(line)
        try:
            result = KERNEL_ITEMS[item['section']](item, device, smoke, cache)
        except Exception as err:  # reported as the item's error; the next item still runs
            traceback.print_exc()
            result = dict(status='error', note=f'{type(err).__name__}: {err}'[:1000])
            if device == 'cuda':
                try:
                    torch.cuda.synchronize()
                except Exception:
                    result['restart'] = True
        print(RESULT + json.dumps(result), flush=True)
        if result.get('restart'):
            return


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=('cuda', 'cpu'), required=True)
    parser.add_argument('--smoke', action='store_true', help='tiny shapes')
    args = parser.parse_args()
    worker(args.device, args.smoke)


if __name__ == '__main__':
    main()
