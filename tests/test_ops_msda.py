"""multi_scale_deformable_attn and each backend against a plain per-sample loop and against
each other (values and gradients), and the backend choice."""
import math
import os
import subprocess
import sys

import pytest
import torch

from occnet.ops import multi_scale_deformable_attn, resolve_backend, set_msda_backend
from msda_cases import outputs_and_grads, random_case
from occnet.ops import msda_cpu


def bilinear_zero_pad(feature, x, y):
    """Sample feature (C, H, W) at continuous pixel coords (align_corners=False convention:
    pixel i covers [i, i+1), its centre is i + 0.5)."""
    channels, height, width = feature.shape
    px, py = x - 0.5, y - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(channels, dtype=feature.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wx = 1 - abs(px - xi)
            wy = 1 - abs(py - yi)
            if 0 <= xi < width and 0 <= yi < height:
                out = out + feature[:, yi, xi] * (wx * wy)
    return out


def loop_msda(value, shapes, locations, weights):
    bs, _, heads, dims = value.shape
    _, queries, _, levels, points, _ = locations.shape
    starts = [0]
    for h, w in shapes[:-1]:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(bs, queries, heads * dims, dtype=value.dtype)
    rows = []
    for b in range(bs):
        for q in range(queries):
            per_head = []
            for m in range(heads):
                acc = torch.zeros(dims, dtype=value.dtype)
                for lvl, (h, w) in enumerate(shapes):
                    feat = value[b, starts[lvl]:starts[lvl] + h * w, m].reshape(h, w, dims)
                    feat = feat.permute(2, 0, 1)
                    for p in range(points):
                        loc = locations[b, q, m, lvl, p]
                        acc = acc + weights[b, q, m, lvl, p] * bilinear_zero_pad(
                            feat, loc[0] * w, loc[1] * h)
                per_head.append(acc)
            rows.append(torch.cat(per_head))
    return torch.stack(rows).view(bs, queries, heads * dims) + out


def make_inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(5, 7), (3, 4)]
    bs, queries, heads, dims, points = 2, 3, 2, 4, 3
    value = torch.randn(bs, sum(h * w for h, w in shapes), heads, dims, generator=gen,
                        dtype=torch.float64)
    # include locations outside [0, 1] to exercise the zero padding
    locations = torch.rand(bs, queries, heads, len(shapes), points, 2, generator=gen,
                           dtype=torch.float64) * 1.4 - 0.2
    weights = torch.rand(bs, queries, heads, len(shapes), points, generator=gen,
                         dtype=torch.float64).softmax(-1)
    return value, shapes, locations, weights


@pytest.mark.parametrize('backend', ['pytorch', 'cpu', 'sparse'])
def test_forward_matches_loop(backend):
    value, shapes, locations, weights = make_inputs()
    expected = loop_msda(value, shapes, locations, weights)
    actual = multi_scale_deformable_attn(value, torch.tensor(shapes), locations, weights,
                                         backend=backend)
    assert actual.shape == (2, 3, 8)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


def test_pixel_centre_returns_that_pixel():
    value = torch.arange(12, dtype=torch.float64).view(1, 12, 1, 1)  # one level 3x4
    # centre of pixel (row 1, col 2) is x = 2.5/4, y = 1.5/3
    loc = torch.tensor([2.5 / 4, 1.5 / 3], dtype=torch.float64).view(1, 1, 1, 1, 1, 2)
    out = multi_scale_deformable_attn(value, [(3, 4)], loc, torch.ones(1, 1, 1, 1, 1,
                                                                        dtype=torch.float64))
    assert out.item() == 1 * 4 + 2


@pytest.mark.parametrize('backend', ['pytorch', 'cpu', 'sparse'])
def test_gradients_match_loop(backend):
    value, shapes, locations, weights = make_inputs(seed=1)
    grads = []
    for fn in (lambda *a: multi_scale_deformable_attn(a[0], torch.tensor(shapes), a[1], a[2],
                                                      backend=backend),
               lambda *a: loop_msda(a[0], shapes, a[1], a[2])):
        inputs = [t.clone().requires_grad_(True) for t in (value, locations, weights)]
        out = fn(*inputs)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads.append([t.grad for t in inputs])
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-8)


def test_cpu_backend_equals_reference_in_fp32_across_chunks(monkeypatch):
    case = random_case(3)
    expected = outputs_and_grads('pytorch', *case)
    # one chunk, then chunks of 1 block (8 blocks): the chunking must not change anything
    for chunk in (msda_cpu.CHUNK_CORNERS, 300 * 3 * 4 * 4):
        monkeypatch.setattr(msda_cpu, 'CHUNK_CORNERS', chunk)
        for got, want, name in zip(outputs_and_grads('cpu', *case), expected,
                                   ('output', 'd value', 'd locations', 'd weights')):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=name)


def test_a_point_off_the_image_gives_zero_and_no_gradient():
    value = torch.randn(1, 12, 1, 2, dtype=torch.float64, requires_grad=True)  # one 3x4 level
    loc = torch.tensor([[1.4, 0.5], [0.5, -0.3]], dtype=torch.float64).view(1, 2, 1, 1, 1, 2)
    loc.requires_grad_(True)
    weights = torch.ones(1, 2, 1, 1, 1, dtype=torch.float64, requires_grad=True)
    out = multi_scale_deformable_attn(value, [(3, 4)], loc, weights, backend='cpu')
    assert out.abs().max() == 0
    out.sum().backward()
    assert value.grad.abs().max() == 0 and loc.grad.abs().max() == 0
    assert weights.grad.abs().max() == 0


TRITON_CHECK = """
import warnings
import torch
from occnet.ops import msda_triton, multi_scale_deformable_attn
from msda_cases import outputs_and_grads, random_case
warnings.simplefilter('error', RuntimeWarning)  # a failed self-check would warn
names = ('output', 'd value', 'd locations', 'd weights')
# 37 queries of 32 channels: 3 tiles of 16 queries, the last one partly masked
case = random_case(5, bs=2, queries=37, heads=2, dims=32, points=2, shapes=((5, 7), (2, 3)))
want = outputs_and_grads('pytorch', *case)
value, shapes, locations, weights = case
rounded = (value.bfloat16(), shapes, locations, weights.bfloat16())
want_bf16 = outputs_and_grads('pytorch', rounded[0].double(), shapes, locations.double(),
                              rounded[3].double())
broken = locations.clone()
broken[0, 1, 0, 0, 0] = torch.tensor([float('nan'), 0.5])
broken[1, 2, 1, 1, 1] = torch.tensor([0.5, float('inf')])
for backend in ('triton', 'triton_csr'):
    for g, w, name in zip(outputs_and_grads(backend, *case), want, names):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=f'{backend} {name}')
    for g, w, name in zip(outputs_and_grads(backend, *rounded), want_bf16, names):
        error = (g.double() - w).abs().max() / w.abs().max()
        assert g.dtype == (torch.float32 if name == 'd locations' else torch.bfloat16)
        assert error < 1e-2, f'{backend} bf16 {name}: {error}'
    off = outputs_and_grads(backend, value, shapes, broken, weights)
    ref = outputs_and_grads('cpu', value, shapes, broken, weights)
    assert all(torch.isfinite(t).all() for t in off), backend
    for g, w, name in zip(off, ref, names):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=f'{backend} NaN {name}')
    print(backend, 'matches')
# one query per program, one warp (the tile the first kernels had)
msda_triton.TILE.update(block_c_elements=32, num_warps=1)
for g, w, name in zip(outputs_and_grads('triton', *case), want, names):
    torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=f'1-query tiles {name}')
print('1-query tiles match')
"""


def test_triton_kernels_match_the_reference_under_the_interpreter():
    """Both Triton variants (atomic and CSR value gradient), run by Triton's CPU
    interpreter, against the reference: fp32 and bf16, values and all gradients, partial
    query tiles, non-finite locations; their self-check runs first and must pass."""
    pytest.importorskip('triton')
    env = dict(os.environ, TRITON_INTERPRET='1', OCCNET_MSDA_SELF_CHECK='1',
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__)] + sys.path))
    result = subprocess.run([sys.executable, '-c', TRITON_CHECK], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert 'triton matches' in result.stdout and 'triton_csr matches' in result.stdout
    assert '1-query tiles match' in result.stdout


def test_sparse_value_gradient_alone_matches_the_loop():
    """value_gradient (the CSR product the 'triton_csr' backend uses on CUDA) equals the
    value gradient of the per-sample loop."""
    value, shapes, locations, weights = make_inputs(seed=2)
    grad_out = torch.linspace(-1, 1, 2 * 3 * 8, dtype=torch.float64).view(2, 3, 8)
    leaf = value.clone().requires_grad_(True)
    loop_msda(leaf, shapes, locations, weights).backward(grad_out)
    got = msda_cpu.value_gradient(grad_out, value.shape, shapes, locations, weights)
    torch.testing.assert_close(got, leaf.grad, rtol=1e-10, atol=1e-10)


def test_backend_choice():
    cpu_value = torch.zeros(1, 1, 1, 1)
    assert resolve_backend(cpu_value) == 'cpu'
    assert resolve_backend(cpu_value, 'pytorch') == 'pytorch'
    with pytest.raises(ValueError, match="choose one of"):
        resolve_backend(cpu_value, 'cuda_ext')
    assert resolve_backend(cpu_value, 'sparse') == 'sparse'
    if os.environ.get('TRITON_INTERPRET') != '1':
        for name in ('triton', 'triton_csr'):
            with pytest.raises(ValueError, match='needs CUDA tensors'):
                resolve_backend(cpu_value, name)
    old = set_msda_backend('pytorch')
    try:
        assert resolve_backend(cpu_value) == 'pytorch'
    finally:
        set_msda_backend(old)


def test_non_finite_locations_count_as_off_the_image():
    value, shapes, locations, weights = random_case(7, bs=1, queries=5, heads=2, dims=4)
    broken = locations.clone()
    broken[0, 1, 0, 0, 0] = torch.tensor([float('nan'), 0.5])
    broken[0, 2, 1, 1, 2] = torch.tensor([0.5, float('inf')])
    silent = weights.clone()
    silent[0, 1, 0, 0, 0] = silent[0, 2, 1, 1, 2] = 0.0  # what "off the image" contributes
    got = outputs_and_grads('cpu', value, shapes, broken, weights)
    want = outputs_and_grads('cpu', value, shapes, locations, silent)
    assert all(torch.isfinite(t).all() for t in got)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])  # value gradient


def test_row_pointers_by_search_equal_those_by_counting():
    """The CUDA path of the CSR row pointers (binary search, no host sync) against the CPU
    one (counting), with empty rows at both ends and in the middle."""
    keys = torch.tensor([1, 1, 2, 5, 5, 5, 7], dtype=torch.int32)
    by_count = msda_cpu.row_pointers(keys, 9, search=False)
    assert by_count.tolist() == [0, 0, 2, 3, 3, 3, 6, 6, 7, 7]
    assert torch.equal(msda_cpu.row_pointers(keys, 9, search=True), by_count)
