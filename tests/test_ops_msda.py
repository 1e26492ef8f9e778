"""multi_scale_deformable_attn against a plain per-sample loop (values and gradients)."""
import math

import torch

from occnet.ops import multi_scale_deformable_attn


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


def test_forward_matches_loop():
    value, shapes, locations, weights = make_inputs()
    expected = loop_msda(value, shapes, locations, weights)
    actual = multi_scale_deformable_attn(value, torch.tensor(shapes), locations, weights)
    assert actual.shape == (2, 3, 8)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


def test_pixel_centre_returns_that_pixel():
    value = torch.arange(12, dtype=torch.float64).view(1, 12, 1, 1)  # one level 3x4
    # centre of pixel (row 1, col 2) is x = 2.5/4, y = 1.5/3
    loc = torch.tensor([2.5 / 4, 1.5 / 3], dtype=torch.float64).view(1, 1, 1, 1, 1, 2)
    out = multi_scale_deformable_attn(value, [(3, 4)], loc, torch.ones(1, 1, 1, 1, 1,
                                                                        dtype=torch.float64))
    assert out.item() == 1 * 4 + 2


def test_gradients_match_loop():
    value, shapes, locations, weights = make_inputs(seed=1)
    grads = []
    for fn in (lambda *a: multi_scale_deformable_attn(a[0], torch.tensor(shapes), a[1], a[2]),
               lambda *a: loop_msda(a[0], shapes, a[1], a[2])):
        inputs = [t.clone().requires_grad_(True) for t in (value, locations, weights)]
        out = fn(*inputs)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads.append([t.grad for t in inputs])
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-8)
