"""Multi-scale deformable attention (Deformable DETR) in PyTorch.

Shapes (contract 7 of shared/DESIGN.md):
    value               (bs, sum_l H_l * W_l, num_heads, head_dims)
    value_spatial_shapes (num_levels, 2) int, rows (H_l, W_l), levels concatenated in `value`
    sampling_locations  (bs, num_queries, num_heads, num_levels, num_points, 2), (x, y) in [0, 1]
                        of the level's width and height (0 = left/top edge, 1 = right/bottom edge)
    attention_weights   (bs, num_queries, num_heads, num_levels, num_points)
    returns             (bs, num_queries, num_heads * head_dims)
Sampling is bilinear with zero padding and align_corners=False, like `F.grid_sample`.

Backends (all compute the same function, checked against each other in tests/test_ops_msda.py):
    'pytorch'     the reference below: one `F.grid_sample` per level; any device.
    'sparse'      sparse products with a hand-written backward (ops/msda_cpu.py); any device
                  (torch.sparse on CUDA).
    'cpu'         'sparse', for CPU tensors only.
    'triton'      a Triton kernel pair (ops/msda_triton.py), value gradient by relaxed atomic
                  adds; CUDA tensors, or CPU tensors under TRITON_INTERPRET=1 (for tests).
    'triton_csr'  the Triton kernels with the value gradient by the sparse product instead
                  of atomics (a candidate for the GPU run to decide on).
    'auto'        'triton' on CUDA when triton imports, else 'pytorch'; 'cpu' on CPU.
The Triton backends check themselves on their first call on a CUDA device and fall back to
'pytorch' with one warning when they fail (ops/msda_self_check.py).
The default is 'auto'. Override it with `msda_backend = '...'` in a config (applied by
tools/train.py, test.py and benchmark.py), `set_msda_backend()`, or the OCCNET_MSDA_BACKEND
environment variable.
"""
import os

import torch
import torch.nn.functional as F

from occnet.ops.msda_cpu import multi_scale_deformable_attn_cpu
from occnet.ops.msda_self_check import SELF_CHECKED, checked_backend
from occnet.ops.msda_triton import multi_scale_deformable_attn_triton, triton_available

BACKENDS = ('auto', 'pytorch', 'sparse', 'cpu', 'triton', 'triton_csr')
_default_backend = os.environ.get('OCCNET_MSDA_BACKEND', 'auto')


def _at_least_fp32(tensor):
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def set_msda_backend(name):
    """Choose the backend every later call uses (one of BACKENDS); returns the old one."""
    global _default_backend
    if name not in BACKENDS:
        raise ValueError(f"msda_backend '{name}' is unknown; choose one of {BACKENDS}")
    old, _default_backend = _default_backend, name
    return old


def resolve_backend(value, backend=None):
    """The backend a call on `value`'s device runs with, after 'auto' is resolved."""
    name = backend or _default_backend
    if name not in BACKENDS:
        raise ValueError(f"msda_backend '{name}' is unknown; choose one of {BACKENDS} "
                         '(config key msda_backend or OCCNET_MSDA_BACKEND)')
    if name == 'auto':
        if value.is_cuda:
            return 'triton' if triton_available() else 'pytorch'
        return 'cpu' if value.device.type == 'cpu' else 'pytorch'
    if name == 'cpu' and value.device.type != 'cpu':
        raise ValueError(f"msda_backend 'cpu' needs CPU tensors, got {value.device}; use "
                         "'auto', 'sparse', 'triton' or 'pytorch'")
    if (name.startswith('triton') and not value.is_cuda
            and os.environ.get('TRITON_INTERPRET') != '1'):
        raise ValueError(f"msda_backend '{name}' needs CUDA tensors (or TRITON_INTERPRET=1 "
                         "for a slow CPU check); use 'auto' or 'cpu'")
    return name


def _as_shape_list(value_spatial_shapes):
    if isinstance(value_spatial_shapes, torch.Tensor):
        return [(int(h), int(w)) for h, w in value_spatial_shapes.tolist()]
    return [(int(h), int(w)) for h, w in value_spatial_shapes]


def multi_scale_deformable_attn_pytorch(value, value_spatial_shapes, sampling_locations,
                                        attention_weights):
    """Reference implementation with one `F.grid_sample` call per level.

    The sampling locations keep their precision: with fp32 locations and a bf16 / fp16
    value, the value is cast up (rounding the locations to bf16 would move them by up to
    0.2 cells on a 200-wide BEV) and the result is returned in the value's dtype."""
    out_dtype = value.dtype
    if sampling_locations.dtype.itemsize > value.dtype.itemsize:
        value = value.to(sampling_locations.dtype)
    attention_weights = attention_weights.to(value.dtype)
    bs, _, num_heads, head_dims = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    shapes = _as_shape_list(value_spatial_shapes)
    value_per_level = value.split([h * w for h, w in shapes], dim=1)
    grids = (2.0 * sampling_locations - 1.0).to(value.dtype)  # grid_sample wants [-1, 1]
    sampled = []
    for level, (height, width) in enumerate(shapes):
        # (bs, H*W, heads, C) -> (bs*heads, C, H, W)
        level_value = value_per_level[level].flatten(2).transpose(1, 2).reshape(
            bs * num_heads, head_dims, height, width)
        # (bs, Q, heads, P, 2) -> (bs*heads, Q, P, 2)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(level_value, level_grid, mode='bilinear',
                                     padding_mode='zeros', align_corners=False))
    # (bs*heads, C, Q, L*P) weighted by (bs*heads, 1, Q, L*P)
    sampled = torch.stack(sampled, dim=-2).flatten(-2)
    weights = attention_weights.transpose(1, 2).reshape(
        bs * num_heads, 1, num_queries, num_levels * num_points)
    output = (sampled * weights).sum(-1).view(bs, num_heads * head_dims, num_queries)
    return output.transpose(1, 2).contiguous().to(out_dtype)


def _run_backend(value, value_spatial_shapes, sampling_locations, attention_weights, name):
    """The op with backend `name` as resolved (no check); shapes as a list of (h, w)."""
    if name.startswith('triton'):
        return multi_scale_deformable_attn_triton(
            value, value_spatial_shapes, sampling_locations, attention_weights,
            value_grad='csr' if name == 'triton_csr' else 'atomic')
    if name in ('cpu', 'sparse'):
        out = multi_scale_deformable_attn_cpu(_at_least_fp32(value), value_spatial_shapes,
                                              sampling_locations,
                                              _at_least_fp32(attention_weights))
        return out.to(value.dtype)
    return multi_scale_deformable_attn_pytorch(value, value_spatial_shapes, sampling_locations,
                                               attention_weights)


def multi_scale_deformable_attn(value, value_spatial_shapes, sampling_locations,
                                attention_weights, backend=None):
    """Multi-scale deformable attention (contract 7) with the backend `resolve_backend`
    picks (default: the fastest correct one for the device), self-checked on first use
    when it is a Triton one. Under autocast the sampling locations stay fp32; the sparse
    backends compute in fp32 and return value's dtype."""
    name = resolve_backend(value, backend)
    value_spatial_shapes = _as_shape_list(value_spatial_shapes)  # one device-to-host copy
    sampling_locations = _at_least_fp32(sampling_locations)
    if name in SELF_CHECKED:
        name = checked_backend(_run_backend, name, value, attention_weights,
                               *sampling_locations.shape[3:5])
    return _run_backend(value, value_spatial_shapes, sampling_locations, attention_weights,
                        name)
