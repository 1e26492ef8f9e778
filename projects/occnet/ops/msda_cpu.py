"""Multi-scale deformable attention as sparse products, with a hand-written backward: the
'cpu' backend, and the 'sparse' backend on any device (torch.sparse on CUDA).

The reference (`multi_scale_deformable_attn_pytorch`) samples with `F.grid_sample` into a
(bs * heads, C, Q, L * P) tensor, copies it, multiplies it by the attention weights and sums,
and autograd keeps several such tensors alive. Here nothing of that size is built.

Each level of the value is padded with a one-pixel ring of zeros, so the four bilinear
corners of a sampling point always exist and out-of-image corners contribute zero (the zero
padding of `grid_sample`, with no masks). Let W be the sparse (bs * heads * Q) x (padded
value rows) matrix holding attention weight x bilinear weight at the 4 corners of every
point. Then:

- forward: out = W @ value, one `F.embedding_bag(mode='sum', per_sample_weights=...)`;
- d value = W^T @ grad. This is computed per corner as a CSR product over the points sorted
  by their top-left corner (one sort of bs * heads * Q * L * P keys), then shifted onto the
  other three corners;
- d W at its non-zeros = <value row, grad row>. One sampled dense-dense product
  (`torch.sparse.sampled_addmm`) gives it, and it chains to the attention weights and the
  sampling locations elementwise.

The work is done in chunks of (batch, head) blocks, which share no value rows, so the
temporary index and weight tensors stay around CHUNK_CORNERS entries (or one block's, when a
single block has more corners than that). Indices are int32: the padded table of one call
must have fewer than 2^31 rows.

Shapes and conventions are those of `occnet.ops.multi_scale_deformable_attn`.
"""
import warnings

import torch
import torch.nn.functional as F

CHUNK_CORNERS = 2 ** 22  # sampling-point corners handled per chunk (about 16 MB per tensor)


def _levels(value_spatial_shapes):
    """Per level: (h, w), the start row of the level in a zero-ringed (h+2)(w+2) table, and
    the rows of one (batch, head) block of that table."""
    shapes = [(int(h), int(w)) for h, w in value_spatial_shapes]
    starts, total = [], 0
    for h, w in shapes:
        starts.append(total)
        total += (h + 2) * (w + 2)
    return shapes, starts, total


def _points(shapes, starts, per_block, locations, attention):
    """Corner geometry of the sampling points of a chunk of (batch, head) blocks.

    Args:
        locations: (nb, Q, L, P, 2) in [0, 1]; attention: (nb, Q, L, P).
    Returns:
        key: (nb, Q, L, P) int32 row of the top-left corner in the chunk's padded table.
        offsets: (L, 4) int32 row offsets of the corners x0y0, x1y0, x0y1, x1y1.
        fx, fy: (nb, Q, L, P) position inside the corner square.
        attn: (nb, Q, L, P) attention weight, 0 where all 4 corners are off the image.
        inside: (nb, Q, L, P) bool, some corner is on the image.
    """
    heights, widths, int_h, int_w, level_starts, offsets = _level_tables(
        shapes, starts, locations.device, locations.dtype)
    # non-finite locations count as off the image (-2 is left of the zero ring)
    x = torch.nan_to_num(locations[..., 0] * widths - 0.5, nan=-2.0, posinf=-2.0, neginf=-2.0)
    y = torch.nan_to_num(locations[..., 1] * heights - 0.5, nan=-2.0, posinf=-2.0, neginf=-2.0)
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    inside = (x0 >= -1) & (x0 <= widths - 1) & (y0 >= -1) & (y0 <= heights - 1)
    col = torch.minimum(x0.clamp(min=-1, max=2 ** 30).long(), int_w - 1) + 1
    row = torch.minimum(y0.clamp(min=-1, max=2 ** 30).long(), int_h - 1) + 1
    blocks = torch.arange(locations.shape[0], device=locations.device).view(
        -1, 1, 1, 1) * per_block
    key = (row * (int_w + 2) + col + level_starts + blocks).to(torch.int32)
    attention = torch.where(inside, attention, torch.zeros_like(attention))
    return key, offsets, fx, fy, attention, inside


_TABLES = {}  # (shapes, device, dtype) -> the per-level tensors of _level_tables


def _corner_shifts(shapes):
    """[(row offset of the corners x0y0, x1y0, x0y1, x1y1)] per level of the padded table."""
    return [(0, 1, w + 2, w + 3) for _, w in shapes]


def _level_tables(shapes, starts, device, dtype):
    """Per-level tensors on `device`, made once per (shapes, device, dtype) so that a call
    on a GPU makes no host-to-device copy: heights and widths (L, 1) in `dtype` and int64,
    level starts (L, 1) int64, corner offsets (L, 4) int32."""
    key = (tuple(shapes), str(device), dtype)
    if key not in _TABLES:
        sizes = torch.tensor(shapes, dtype=torch.int64, device='cpu')  # then copied once
        if len(_TABLES) >= 64:
            _TABLES.clear()
        _TABLES[key] = tuple(t.to(device) for t in (
            sizes[:, :1].to(dtype), sizes[:, 1:].to(dtype), sizes[:, :1], sizes[:, 1:],
            torch.tensor(starts, dtype=torch.int64, device='cpu')[:, None],
            torch.tensor(_corner_shifts(shapes), dtype=torch.int32, device='cpu')))
    return _TABLES[key]


def _bilinear(fx, fy):
    """(..., 4) weights of the corners x0y0, x1y0, x0y1, x1y1."""
    return torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=-1)


def _padded_table(value, shapes):
    """(bs, S, heads, C) -> (bs * heads * sum (h+2)(w+2), C), each level ringed by zeros."""
    bs, _, heads, channels = value.shape
    levels = value.split([h * w for h, w in shapes], dim=1)
    padded = [F.pad(level.reshape(bs, h, w, heads, channels).permute(0, 3, 4, 1, 2),
                    (1, 1, 1, 1)).flatten(3) for level, (h, w) in zip(levels, shapes)]
    return torch.cat(padded, dim=3).permute(0, 1, 3, 2).reshape(-1, channels)


def _unpad(grad_table, shapes, bs, heads):
    """Inverse of _padded_table for gradients: crop the rings -> (bs, S, heads, C)."""
    channels = grad_table.shape[-1]
    grad = grad_table.view(bs, heads, -1, channels)
    out, start = [], 0
    for h, w in shapes:
        level = grad[:, :, start:start + (h + 2) * (w + 2)].view(bs, heads, h + 2, w + 2,
                                                                  channels)
        out.append(level[:, :, 1:h + 1, 1:w + 1].reshape(bs, heads, h * w, channels))
        start += (h + 2) * (w + 2)
    return torch.cat(out, dim=2).transpose(1, 2)


def _chunks(num_blocks, corners_per_block):
    """[(first block, end block)] with about CHUNK_CORNERS corners each."""
    step = max(1, CHUNK_CORNERS // max(corners_per_block, 1))
    return [(b, min(b + step, num_blocks)) for b in range(0, num_blocks, step)]


def _as_blocks(sampling_locations, attention_weights):
    """Locations (bs*heads, Q, L, P, 2) and weights (bs*heads, Q, L, P), block-major."""
    bs, num_queries, heads = sampling_locations.shape[:3]
    return (sampling_locations.transpose(1, 2).reshape(bs * heads, num_queries,
                                                       *sampling_locations.shape[3:]),
            attention_weights.transpose(1, 2).reshape(bs * heads, num_queries,
                                                      *attention_weights.shape[3:]))


class _MSDASparseCPU(torch.autograd.Function):
    """Runs with autocast off, forward and backward, in the inputs' precision (fp32 under
    autocast; the sparse kernels have no bf16 versions, so callers pass fp32 or fp64)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type='cpu', cast_inputs=torch.float32)
    def forward(ctx, value, value_spatial_shapes, sampling_locations, attention_weights):
        bs, _, heads, channels = value.shape
        _, num_queries, _, levels, points, _ = sampling_locations.shape
        shapes, starts, per_block = _levels(value_spatial_shapes)
        locations, attention = _as_blocks(sampling_locations, attention_weights)
        if bs * heads * per_block >= 2 ** 31:
            raise ValueError(f'value too large for int32 indices ({bs * heads * per_block} '
                             "padded rows); use msda_backend 'pytorch'")
        table = _padded_table(value, shapes)
        out = value.new_empty(bs * heads, num_queries, channels)
        for first, end in _chunks(bs * heads, num_queries * levels * points * 4):
            key, offsets, fx, fy, attn, _ = _points(shapes, starts, per_block,
                                                    locations[first:end], attention[first:end])
            index = (key[..., None] + offsets[:, None, :]).reshape(-1, levels * points * 4)
            weight = (_bilinear(fx, fy) * attn[..., None]).reshape(index.shape)
            out[first:end] = F.embedding_bag(
                index, table[first * per_block:end * per_block],
                per_sample_weights=weight.to(table.dtype), mode='sum').view(-1, num_queries,
                                                                            channels)
        ctx.save_for_backward(value, sampling_locations, attention_weights)
        ctx.shapes = shapes
        return out.view(bs, heads, num_queries, channels).transpose(1, 2).reshape(
            bs, num_queries, heads * channels)

    @staticmethod
    @torch.amp.custom_bwd(device_type='cpu')
    def backward(ctx, grad_out):
        value, sampling_locations, attention_weights = ctx.saved_tensors
        bs, _, heads, channels = value.shape
        _, num_queries, _, levels, points, _ = sampling_locations.shape
        shapes, starts, per_block = _levels(ctx.shapes)
        locations, attention = _as_blocks(sampling_locations, attention_weights)
        table = _padded_table(value, shapes)
        grad = grad_out.reshape(bs, num_queries, heads, channels).transpose(1, 2).reshape(
            bs * heads, num_queries, channels).to(value.dtype)
        grad_table = torch.empty_like(table)
        grad_loc = torch.empty(locations.shape, dtype=value.dtype, device=value.device)
        grad_attn = torch.empty(attention.shape, dtype=value.dtype, device=value.device)
        heights, widths = _level_tables(shapes, starts, value.device, value.dtype)[:2]
        for first, end in _chunks(bs * heads, num_queries * levels * points * 4):
            key, offsets, fx, fy, attn, inside = _points(
                shapes, starts, per_block, locations[first:end], attention[first:end])
            rows = (end - first) * num_queries
            rows_table = table[first * per_block:end * per_block]
            chunk_grad = grad[first:end].reshape(rows, channels)
            bilinear = _bilinear(fx, fy)
            if ctx.needs_input_grad[0]:
                grad_table[first * per_block:end * per_block] = _transposed_product(
                    key.reshape(-1), bilinear * attn[..., None], chunk_grad, shapes, starts,
                    per_block, end - first, levels * points)
            if not (ctx.needs_input_grad[2] or ctx.needs_input_grad[3]):
                continue
            dots = _corner_dots(key, offsets, chunk_grad, rows_table).view(bilinear.shape)
            grad_attn[first:end] = (dots * bilinear).sum(-1) * inside
            d_fx = (dots[..., 1] - dots[..., 0]) * (1 - fy) + (dots[..., 3] - dots[..., 2]) * fy
            d_fy = (dots[..., 2] - dots[..., 0]) * (1 - fx) + (dots[..., 3] - dots[..., 1]) * fx
            grad_loc[first:end, ..., 0] = d_fx * attn * widths
            grad_loc[first:end, ..., 1] = d_fy * attn * heights
        shape = (bs, heads, num_queries, levels, points)
        needs = ctx.needs_input_grad
        return (_unpad(grad_table, shapes, bs, heads).to(value.dtype) if needs[0] else None,
                None,
                grad_loc.view(*shape, 2).transpose(1, 2).to(sampling_locations.dtype)
                if needs[2] else None,
                grad_attn.view(shape).transpose(1, 2).to(attention_weights.dtype)
                if needs[3] else None)


def _corner_dots(key, offsets, grad, table):
    """<table row, grad row> at every corner of every point: (rows * L * P * 4,) in the
    order (row, level, point, corner), as one sampled dense-dense product."""
    index = (key[..., None] + offsets[:, None, :]).reshape(-1)
    rows = grad.shape[0]
    per_row = index.numel() // rows
    crow = torch.arange(0, index.numel() + 1, per_row, dtype=torch.int32, device=key.device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter('ignore')
        pattern = torch.sparse_csr_tensor(crow, index, grad.new_ones(index.numel()),
                                          size=(rows, table.shape[0]))
        return torch.sparse.sampled_addmm(pattern, grad, table.t(), beta=0.0).values()


def row_pointers(sorted_key, num_rows, search=None):
    """CSR row pointers (num_rows + 1,) int32 of sorted int32 row indices. On CUDA (or with
    search=True) by binary search, which needs no host sync (bincount needs its largest
    value on the host); on CPU by counting, which is faster there."""
    if search if search is not None else sorted_key.is_cuda:
        return torch.searchsorted(sorted_key, torch.arange(
            num_rows + 1, dtype=sorted_key.dtype, device=sorted_key.device), out_int32=True)
    crow = torch.zeros(num_rows + 1, dtype=torch.int32, device=sorted_key.device)
    crow[1:] = torch.bincount(sorted_key, minlength=num_rows).cumsum(0)
    return crow


def _transposed_product(key, corner_weights, grad, shapes, starts, per_block, num_blocks,
                        points_per_row):
    """W^T @ grad: (num_blocks * per_block, C) gradient of the padded table.

    Points are sorted by their top-left corner row `key`; for each corner a CSR matrix
    (padded rows x bag rows) holding that corner's weights is multiplied by grad, and the
    result is shifted by the corner's row offset within its level.
    """
    num_rows = num_blocks * per_block
    sorted_key, order = torch.sort(key, stable=True)
    crow = row_pointers(sorted_key, num_rows)
    bag_rows = torch.div(order, points_per_row, rounding_mode='floor').to(torch.int32)
    weights = corner_weights.reshape(-1, 4)[order].to(grad.dtype)
    out = torch.zeros(num_rows, grad.shape[1], dtype=grad.dtype, device=grad.device)
    for corner in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            matrix = torch.sparse_csr_tensor(crow, bag_rows, weights[:, corner].contiguous(),
                                             size=(num_rows, grad.shape[0]))
            at_top_left = (matrix @ grad).view(num_blocks, per_block, -1)
        grad_blocks = out.view(num_blocks, per_block, -1)
        for level, (h, w) in enumerate(shapes):
            start, size = starts[level], (h + 2) * (w + 2)
            shift = _corner_shifts(shapes)[level][corner]
            grad_blocks[:, start + shift:start + size] += \
                at_top_left[:, start:start + size - shift]
    return out


def value_gradient(grad_out, value_shape, value_spatial_shapes, sampling_locations,
                   attention_weights):
    """d output / d value contracted with grad_out, W^T @ grad_out, by the sorted-corner CSR
    product, with no atomics (the Triton backend's value_grad='csr' uses it on CUDA).

    Args:
        grad_out: (bs, Q, heads * C); value_shape: (bs, S, heads, C);
        sampling_locations: (bs, Q, heads, L, P, 2); attention_weights: (bs, Q, heads, L, P).
    Returns:
        (bs, S, heads, C) in grad_out's dtype.
    """
    bs, _, heads, channels = value_shape
    _, num_queries, _, levels, points, _ = sampling_locations.shape
    shapes, starts, per_block = _levels(value_spatial_shapes)
    locations, attention = _as_blocks(sampling_locations, attention_weights)
    grad = grad_out.reshape(bs, num_queries, heads, channels).transpose(1, 2).reshape(
        bs * heads, num_queries, channels)
    grad_table = grad.new_empty(bs * heads * per_block, channels)
    for first, end in _chunks(bs * heads, num_queries * levels * points * 4):
        key, offsets, fx, fy, attn, _ = _points(shapes, starts, per_block,
                                                locations[first:end], attention[first:end])
        grad_table[first * per_block:end * per_block] = _transposed_product(
            key.reshape(-1), _bilinear(fx, fy) * attn[..., None],
            grad[first:end].reshape(-1, channels), shapes, starts, per_block, end - first,
            levels * points)
    return _unpad(grad_table, shapes, bs, heads)


def multi_scale_deformable_attn_cpu(value, value_spatial_shapes, sampling_locations,
                                    attention_weights):
    """Multi-scale deformable attention by sparse products (see the module docstring); same
    arguments and result as `multi_scale_deformable_attn_pytorch`, with the shapes as a list
    of (h, w) (the dispatcher converts tensors). Runs on any device (torch.sparse on CUDA:
    the 'sparse' backend), with autocast off."""
    with torch.autocast(value.device.type, enabled=False):
        return _MSDASparseCPU.apply(value, value_spatial_shapes, sampling_locations,
                                    attention_weights)
