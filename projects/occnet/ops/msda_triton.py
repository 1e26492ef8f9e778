"""Multi-scale deformable attention as a Triton kernel pair (forward and backward) for CUDA.

One program handles one (batch, query, head): it walks the levels and points, gathers the
four bilinear corners of each sampling point as head_dims-wide vectors and accumulates them
with the attention weight in fp32. The backward program recomputes the corners, scatters
weight x grad_out into the value gradient with atomic adds (so the value gradient is not
bitwise deterministic), and reduces the attention and location gradients in registers.
Inputs may be fp32, fp16 or bf16; accumulation is fp32 (fp64 inputs are computed in fp32).
Offsets are int64.

The kernels also run on CPU tensors under `TRITON_INTERPRET=1` (slowly), which is how the
tests check them on machines without a GPU. Shapes and conventions are those of
`occnet.ops.multi_scale_deformable_attn`.
"""
import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with CUDA builds of torch
    triton = None


def triton_available():
    """True when the Triton package can be imported."""
    return triton is not None


if triton is not None:

    @triton.jit
    def _corner(value_ptr, row_base, x, y, width, height, heads, channels, offs, cmask):
        """Value vector at integer pixel (x, y) of a level, zero outside it, and its row."""
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        row = row_base + (y * width + x) * heads
        vec = tl.load(value_ptr + row * channels + offs, mask=cmask & inside,
                      other=0.0).to(tl.float32)
        return vec, row, inside

    @triton.jit
    def _corners(value_ptr, row_base, x0, y0, width, height, heads, channels, offs, cmask):
        """The 4 corners x0y0, x1y0, x0y1, x1y1: value vectors, rows and on-image flags."""
        v00, r00, i00 = _corner(value_ptr, row_base, x0, y0, width, height, heads, channels,
                                offs, cmask)
        v01, r01, i01 = _corner(value_ptr, row_base, x0 + 1, y0, width, height, heads,
                                channels, offs, cmask)
        v10, r10, i10 = _corner(value_ptr, row_base, x0, y0 + 1, width, height, heads,
                                channels, offs, cmask)
        v11, r11, i11 = _corner(value_ptr, row_base, x0 + 1, y0 + 1, width, height, heads,
                                channels, offs, cmask)
        return v00, v01, v10, v11, r00, r01, r10, r11, i00, i01, i10, i11

    @triton.jit
    def _level(shapes_ptr, starts_ptr, level, batch, num_values, heads, head):
        """Height, width and first value row (of this batch and head) of a level."""
        height = tl.load(shapes_ptr + 2 * level)
        width = tl.load(shapes_ptr + 2 * level + 1)
        return height, width, (batch * num_values + tl.load(starts_ptr + level)) * heads + head

    @triton.jit
    def _point(loc_ptr, attn_ptr, k, width, height):
        """Sampling point k: top-left corner pixel (x0, y0), position inside the corner
        square (fx, fy) and attention weight, all from the normalised location."""
        x = tl.load(loc_ptr + 2 * k).to(tl.float32) * width - 0.5
        y = tl.load(loc_ptr + 2 * k + 1).to(tl.float32) * height - 0.5
        x0f = tl.floor(x)
        y0f = tl.floor(y)
        weight = tl.load(attn_ptr + k).to(tl.float32)
        return x0f.to(tl.int32), y0f.to(tl.int32), x - x0f, y - y0f, weight

    @triton.jit
    def _msda_forward_kernel(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
                             num_values, num_queries, heads, channels,
                             LEVELS: tl.constexpr, POINTS: tl.constexpr,
                             BLOCK_C: tl.constexpr):
        pid = tl.program_id(0).to(tl.int64)  # (batch * query) * heads + head
        head = pid % heads
        bq = pid // heads
        batch = bq // num_queries
        offs = tl.arange(0, BLOCK_C)
        cmask = offs < channels
        acc = tl.zeros([BLOCK_C], dtype=tl.float32)
        for level in tl.static_range(LEVELS):
            height, width, row_base = _level(shapes_ptr, starts_ptr, level, batch, num_values,
                                             heads, head)
            for point in tl.static_range(POINTS):
                k = (pid * LEVELS + level) * POINTS + point
                x0, y0, fx, fy, weight = _point(loc_ptr, attn_ptr, k, width, height)
                (v00, v01, v10, v11, _, _, _, _, _, _, _, _) = _corners(
                    value_ptr, row_base, x0, y0, width, height, heads, channels, offs, cmask)
                sampled = ((1 - fx) * (1 - fy) * v00 + fx * (1 - fy) * v01
                           + (1 - fx) * fy * v10 + fx * fy * v11)
                acc += weight * sampled
        tl.store(out_ptr + pid * channels + offs, acc.to(out_ptr.dtype.element_ty), mask=cmask)

    @triton.jit
    def _msda_backward_kernel(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr,
                              grad_out_ptr, grad_value_ptr, grad_loc_ptr, grad_attn_ptr,
                              num_values, num_queries, heads, channels,
                              LEVELS: tl.constexpr, POINTS: tl.constexpr,
                              BLOCK_C: tl.constexpr):
        pid = tl.program_id(0).to(tl.int64)
        head = pid % heads
        bq = pid // heads
        batch = bq // num_queries
        offs = tl.arange(0, BLOCK_C)
        cmask = offs < channels
        grad = tl.load(grad_out_ptr + pid * channels + offs, mask=cmask,
                       other=0.0).to(tl.float32)
        for level in tl.static_range(LEVELS):
            height, width, row_base = _level(shapes_ptr, starts_ptr, level, batch, num_values,
                                             heads, head)
            for point in tl.static_range(POINTS):
                k = (pid * LEVELS + level) * POINTS + point
                x0, y0, fx, fy, weight = _point(loc_ptr, attn_ptr, k, width, height)
                (v00, v01, v10, v11, r00, r01, r10, r11, i00, i01, i10, i11) = _corners(
                    value_ptr, row_base, x0, y0, width, height, heads, channels, offs, cmask)
                w00 = (1 - fx) * (1 - fy)
                w01 = fx * (1 - fy)
                w10 = (1 - fx) * fy
                w11 = fx * fy
                sampled = w00 * v00 + w01 * v01 + w10 * v10 + w11 * v11
                tl.store(grad_attn_ptr + k, tl.sum(sampled * grad, axis=0))
                # d sampled / d fx and d fy, then chain to the normalised location
                d_fx = (1 - fy) * (v01 - v00) + fy * (v11 - v10)
                d_fy = (1 - fx) * (v10 - v00) + fx * (v11 - v01)
                tl.store(grad_loc_ptr + 2 * k,
                         weight * width.to(tl.float32) * tl.sum(d_fx * grad, axis=0))
                tl.store(grad_loc_ptr + 2 * k + 1,
                         weight * height.to(tl.float32) * tl.sum(d_fy * grad, axis=0))
                scaled = weight * grad
                tl.atomic_add(grad_value_ptr + r00 * channels + offs, w00 * scaled,
                              mask=cmask & i00)
                tl.atomic_add(grad_value_ptr + r01 * channels + offs, w01 * scaled,
                              mask=cmask & i01)
                tl.atomic_add(grad_value_ptr + r10 * channels + offs, w10 * scaled,
                              mask=cmask & i10)
                tl.atomic_add(grad_value_ptr + r11 * channels + offs, w11 * scaled,
                              mask=cmask & i11)


_LEVEL_TABLES = {}  # (shapes, device) -> (shapes, starts) int32 tensors on the device


def _level_tables(value_spatial_shapes, device):
    """int32 (levels, 2) shapes and (levels,) first rows of each level, on `device`. Made
    once per (shapes, device) and reused: no host-to-device copy per call."""
    key = (tuple((int(h), int(w)) for h, w in value_spatial_shapes), str(device))
    tables = _LEVEL_TABLES.get(key)
    if tables is None:
        sizes = [h * w for h, w in key[0]]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        tables = (torch.tensor(key[0], dtype=torch.int32, device=device).view(-1, 2),
                  torch.tensor(starts, dtype=torch.int32, device=device))
        if len(_LEVEL_TABLES) >= 64:
            _LEVEL_TABLES.clear()
        _LEVEL_TABLES[key] = tables
    return tables


class _MSDATriton(torch.autograd.Function):

    @staticmethod
    @torch.amp.custom_fwd(device_type='cuda')
    def forward(ctx, value, value_spatial_shapes, sampling_locations, attention_weights):
        value = value.contiguous()
        sampling_locations = sampling_locations.contiguous()
        attention_weights = attention_weights.contiguous()
        bs, num_values, heads, channels = value.shape
        _, num_queries, _, levels, points, _ = sampling_locations.shape
        shapes, starts = _level_tables(value_spatial_shapes, value.device)
        out = value.new_empty(bs, num_queries, heads, channels)
        block = triton.next_power_of_2(channels)
        _msda_forward_kernel[(bs * num_queries * heads,)](
            value, shapes, starts, sampling_locations, attention_weights, out,
            num_values, num_queries, heads, channels, LEVELS=levels, POINTS=points,
            BLOCK_C=block, num_warps=1)  # one head's channels: a single warp is enough
        ctx.save_for_backward(value, shapes, starts, sampling_locations, attention_weights)
        return out.view(bs, num_queries, heads * channels)

    @staticmethod
    @torch.amp.custom_bwd(device_type='cuda')
    def backward(ctx, grad_out):
        value, shapes, starts, sampling_locations, attention_weights = ctx.saved_tensors
        bs, num_values, heads, channels = value.shape
        _, num_queries, _, levels, points, _ = sampling_locations.shape
        grad_value = torch.zeros(value.shape, dtype=torch.float32, device=value.device)
        grad_loc = torch.empty(sampling_locations.shape, dtype=torch.float32,
                               device=value.device)
        grad_attn = torch.empty(attention_weights.shape, dtype=torch.float32,
                                device=value.device)
        _msda_backward_kernel[(bs * num_queries * heads,)](
            value, shapes, starts, sampling_locations, attention_weights,
            grad_out.contiguous(), grad_value, grad_loc, grad_attn,
            num_values, num_queries, heads, channels, LEVELS=levels, POINTS=points,
            BLOCK_C=triton.next_power_of_2(channels), num_warps=1)
        return (grad_value.to(value.dtype), None, grad_loc.to(sampling_locations.dtype),
                grad_attn.to(attention_weights.dtype))


def multi_scale_deformable_attn_triton(value, value_spatial_shapes, sampling_locations,
                                       attention_weights):
    """Multi-scale deformable attention with the Triton kernels; same arguments and result
    as `multi_scale_deformable_attn_pytorch`. Needs CUDA tensors, or CPU tensors with
    TRITON_INTERPRET=1 set before triton is imported. The shapes are a list of (h, w) (the
    dispatcher converts tensors)."""
    if triton is None:
        raise RuntimeError('the Triton backend needs the triton package (pip install triton)')
    return _MSDATriton.apply(value, value_spatial_shapes, sampling_locations,
                             attention_weights)
