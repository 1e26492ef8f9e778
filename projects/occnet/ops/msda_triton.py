"""Multi-scale deformable attention as Triton kernels for CUDA.

One program handles a tile of BLOCK_Q queries of one (batch, head), with `num_warps` warps;
both kernels run the same program (`_msda_program`, forward or backward by a constexpr). It
walks the levels and points, gathers the four bilinear corners of each query's sampling
point as a (BLOCK_Q, head_dims) tile and accumulates them with the attention weights in fp32.
The backward program recomputes the corners, reduces the attention and location gradients
over the channels, and (value_grad='atomic') scatters weight x grad_out into the value
gradient with relaxed atomic adds: the order of a sum does not matter, so no acquire/release
fence is needed, and the value gradient is not bitwise deterministic.

value_grad='csr' is the candidate without atomics: the backward kernel leaves the value
gradient out, and it is computed as the sparse product W^T @ grad_out over the points sorted
by corner (ops/msda_cpu.py `value_gradient`, through torch.sparse). In spatial
cross-attention thousands of points land on each 17x30 map, so each value row takes hundreds
of atomic adds; the GPU run (tools/gpu_check.py) decides between the two.

Inputs may be fp32, fp16 or bf16 (the sampling locations fp32 or more); accumulation is fp32
(fp64 inputs are computed in fp32). Offsets are int64. Non-finite locations count as off the
image, like the 'cpu' backend.

The kernels also run on CPU tensors under `TRITON_INTERPRET=1` (slowly), which is how the
tests check them on machines without a GPU; tools/check_kernels.py compiles them to cubin for
real GPU targets from `AOT_SPECS`. Shapes and conventions are those of
`occnet.ops.multi_scale_deformable_attn`.
"""
import contextlib

import torch

from occnet.ops.msda_cpu import value_gradient

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with CUDA builds of torch
    triton = None

TILE = dict(block_c_elements=512, num_warps=4)  # BLOCK_Q * BLOCK_C per program; warps
VALUE_GRADS = ('atomic', 'csr')


def triton_available():
    """True when the Triton package can be imported."""
    return triton is not None


def tile_queries(channels):
    """BLOCK_Q, the queries one program handles, for a head of `channels` channels."""
    block_c = triton.next_power_of_2(channels)
    return max(1, TILE['block_c_elements'] // block_c)


if triton is not None:

    @triton.jit
    def _level(shapes_ptr, starts_ptr, level, batch, num_values, heads, head):
        """Height, width and first value row (of this batch and head) of a level."""
        height = tl.load(shapes_ptr + 2 * level)
        width = tl.load(shapes_ptr + 2 * level + 1)
        return height, width, (batch * num_values + tl.load(starts_ptr + level)) * heads + head

    @triton.jit
    def _points(loc_ptr, attn_ptr, k, qmask, width, height):
        """Sampling point k of each query in the tile (BLOCK_Q,): top-left corner pixel
        (x0, y0), position inside the corner square (fx, fy) and attention weight. Pixel
        coordinates are clamped to [-2, size + 1], which keeps off-image points off the
        image, and NaN counts as -2 (off the image)."""
        wf = width.to(tl.float32)
        hf = height.to(tl.float32)
        x = tl.load(loc_ptr + 2 * k, mask=qmask, other=0.0).to(tl.float32) * wf - 0.5
        y = tl.load(loc_ptr + 2 * k + 1, mask=qmask, other=0.0).to(tl.float32) * hf - 0.5
        x = tl.minimum(tl.maximum(tl.where(x == x, x, -2.0), -2.0), wf + 1.0)
        y = tl.minimum(tl.maximum(tl.where(y == y, y, -2.0), -2.0), hf + 1.0)
        x0f = tl.floor(x)
        y0f = tl.floor(y)
        weight = tl.load(attn_ptr + k, mask=qmask, other=0.0).to(tl.float32)
        return x0f.to(tl.int32), y0f.to(tl.int32), x - x0f, y - y0f, weight

    @triton.jit
    def _corner(value_ptr, row_base, x, y, width, height, heads, channels, offs, cmask,
                qmask):
        """Value tile (BLOCK_Q, BLOCK_C) at integer pixels (x, y), zero outside the level;
        the value rows (BLOCK_Q,) and the tile's load mask."""
        inside = qmask & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        row = row_base + (y * width + x).to(tl.int64) * heads
        mask = inside[:, None] & cmask[None, :]
        tile = tl.load(value_ptr + row[:, None] * channels + offs[None, :], mask=mask,
                       other=0.0).to(tl.float32)
        return tile, row, mask

    @triton.jit
    def _query_tile(heads, num_queries, channels, BLOCK_Q: tl.constexpr,
                    BLOCK_C: tl.constexpr):
        """What this program covers, in both kernels' grid (cdiv(queries, BLOCK_Q), batch *
        heads): batch, head, the query mask and output rows (BLOCK_Q,), the channel offsets
        and mask (BLOCK_C,)."""
        bh = tl.program_id(1).to(tl.int64)
        batch = bh // heads
        head = bh % heads
        q = tl.program_id(0).to(tl.int64) * BLOCK_Q + tl.arange(0, BLOCK_Q)
        qmask = q < num_queries
        slot = (batch * num_queries + q) * heads + head
        offs = tl.arange(0, BLOCK_C)
        return batch, head, qmask, slot, offs, offs < channels

    @triton.jit
    def _bilinear(value_ptr, loc_ptr, attn_ptr, k, row_base, width, height, heads, channels,
                  offs, cmask, qmask):
        """Sampling point k of each query in the tile, as both kernels read it: the four
        corner tiles (v00, v01, v10, v11: (BLOCK_Q, BLOCK_C)), their value rows and load
        masks, the position inside the corner square (fx, fy) and the attention weight."""
        x0, y0, fx, fy, weight = _points(loc_ptr, attn_ptr, k, qmask, width, height)
        v00, r00, m00 = _corner(value_ptr, row_base, x0, y0, width, height, heads, channels,
                                offs, cmask, qmask)
        v01, r01, m01 = _corner(value_ptr, row_base, x0 + 1, y0, width, height, heads,
                                channels, offs, cmask, qmask)
        v10, r10, m10 = _corner(value_ptr, row_base, x0, y0 + 1, width, height, heads,
                                channels, offs, cmask, qmask)
        v11, r11, m11 = _corner(value_ptr, row_base, x0 + 1, y0 + 1, width, height, heads,
                                channels, offs, cmask, qmask)
        return (v00, v01, v10, v11, r00, r01, r10, r11, m00, m01, m10, m11, fx, fy,
                weight)

    @triton.jit
    def _msda_program(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, io_ptr,
                      grad_value_ptr, grad_loc_ptr, grad_attn_ptr,
                      num_values, num_queries, heads, channels,
                      LEVELS: tl.constexpr, POINTS: tl.constexpr, BLOCK_Q: tl.constexpr,
                      BLOCK_C: tl.constexpr, BACKWARD: tl.constexpr, VALUE_GRAD: tl.constexpr):
        """One program of either kernel: the walk over levels and points both share.
        Forward: io_ptr is the output, accumulated over the points; the grad_* pointers are
        not touched. Backward: io_ptr is grad_out; each point stores its attention and
        location gradients and, with VALUE_GRAD, scatters its value gradient with atomics."""
        batch, head, qmask, slot, offs, cmask = _query_tile(heads, num_queries, channels,
                                                            BLOCK_Q, BLOCK_C)
        io = slot[:, None] * channels + offs[None, :]
        io_mask = qmask[:, None] & cmask[None, :]
        if BACKWARD:
            grad = tl.load(io_ptr + io, mask=io_mask, other=0.0).to(tl.float32)
        else:
            acc = tl.zeros([BLOCK_Q, BLOCK_C], dtype=tl.float32)
        for level in tl.static_range(LEVELS):
            height, width, row_base = _level(shapes_ptr, starts_ptr, level, batch, num_values,
                                             heads, head)
            for point in range(POINTS):
                k = (slot * LEVELS + level) * POINTS + point
                (v00, v01, v10, v11, r00, r01, r10, r11, m00, m01, m10, m11, fx, fy,
                 weight) = _bilinear(value_ptr, loc_ptr, attn_ptr, k, row_base, width, height,
                                     heads, channels, offs, cmask, qmask)
                w00 = ((1 - fx) * (1 - fy))[:, None]
                w01 = (fx * (1 - fy))[:, None]
                w10 = ((1 - fx) * fy)[:, None]
                w11 = (fx * fy)[:, None]
                sampled = w00 * v00 + w01 * v01 + w10 * v10 + w11 * v11
                if BACKWARD:
                    tl.store(grad_attn_ptr + k, tl.sum(sampled * grad, axis=1), mask=qmask)
                    # d sampled / d fx and d fy, then chained to the normalised location
                    d_fx = (1 - fy)[:, None] * (v01 - v00) + fy[:, None] * (v11 - v10)
                    d_fy = (1 - fx)[:, None] * (v10 - v00) + fx[:, None] * (v11 - v01)
                    tl.store(grad_loc_ptr + 2 * k,
                             weight * width.to(tl.float32) * tl.sum(d_fx * grad, axis=1),
                             mask=qmask)
                    tl.store(grad_loc_ptr + 2 * k + 1,
                             weight * height.to(tl.float32) * tl.sum(d_fy * grad, axis=1),
                             mask=qmask)
                    if VALUE_GRAD:
                        scaled = weight[:, None] * grad
                        columns = offs[None, :]
                        tl.atomic_add(grad_value_ptr + r00[:, None] * channels + columns,
                                      w00 * scaled, mask=m00, sem='relaxed')
                        tl.atomic_add(grad_value_ptr + r01[:, None] * channels + columns,
                                      w01 * scaled, mask=m01, sem='relaxed')
                        tl.atomic_add(grad_value_ptr + r10[:, None] * channels + columns,
                                      w10 * scaled, mask=m10, sem='relaxed')
                        tl.atomic_add(grad_value_ptr + r11[:, None] * channels + columns,
                                      w11 * scaled, mask=m11, sem='relaxed')
                else:
                    acc += weight[:, None] * sampled
        if not BACKWARD:
            tl.store(io_ptr + io, acc.to(io_ptr.dtype.element_ty), mask=io_mask)

    @triton.jit(do_not_specialize=['num_values', 'num_queries'])  # one kernel per shape kind
    def _msda_forward_kernel(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
                             num_values, num_queries, heads, channels,
                             LEVELS: tl.constexpr, POINTS: tl.constexpr,
                             BLOCK_Q: tl.constexpr, BLOCK_C: tl.constexpr):
        """Grid (cdiv(queries, BLOCK_Q), batch * heads)."""
        _msda_program(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
                      out_ptr, out_ptr, out_ptr, num_values, num_queries, heads, channels,
                      LEVELS, POINTS, BLOCK_Q, BLOCK_C, False, False)

    @triton.jit(do_not_specialize=['num_values', 'num_queries'])  # one kernel per shape kind
    def _msda_backward_kernel(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr,
                              grad_out_ptr, grad_value_ptr, grad_loc_ptr, grad_attn_ptr,
                              num_values, num_queries, heads, channels,
                              LEVELS: tl.constexpr, POINTS: tl.constexpr,
                              BLOCK_Q: tl.constexpr, BLOCK_C: tl.constexpr,
                              VALUE_GRAD: tl.constexpr):
        """Grid as the forward. VALUE_GRAD: scatter the value gradient with atomics (else
        grad_value_ptr is not touched)."""
        _msda_program(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, grad_out_ptr,
                      grad_value_ptr, grad_loc_ptr, grad_attn_ptr, num_values, num_queries,
                      heads, channels, LEVELS, POINTS, BLOCK_Q, BLOCK_C, True, VALUE_GRAD)


def _spec(dtype, levels, points, channels, backward, value_grad=True):
    """(signature, constexprs, attrs, options) of one kernel for tools/check_kernels.py, as a
    call under autocast launches it: value and out / grad_out of `dtype` ('fp32', 'bf16',
    'fp16'), attention weights fp32 (softmax autocasts to fp32), locations fp32 (the
    dispatcher keeps them so), gradients fp32. attrs mark what the launcher marks: pointers
    16-byte aligned, and `channels` a multiple of 16 when it is one."""
    signature = {'value_ptr': f'*{dtype}', 'shapes_ptr': '*i32', 'starts_ptr': '*i32',
                 'loc_ptr': '*fp32', 'attn_ptr': '*fp32'}
    if backward:
        signature.update(grad_out_ptr=f'*{dtype}', grad_value_ptr='*fp32',
                         grad_loc_ptr='*fp32', grad_attn_ptr='*fp32')
    else:
        signature['out_ptr'] = f'*{dtype}'
    signature.update(num_values='i32', num_queries='i32', heads='i32', channels='i32')
    block_c = 1 << (channels - 1).bit_length()
    constexprs = dict(LEVELS=levels, POINTS=points, BLOCK_C=block_c,
                      BLOCK_Q=max(1, TILE['block_c_elements'] // block_c))
    if backward:
        constexprs['VALUE_GRAD'] = value_grad
    aligned = [name for name in signature if name.endswith('_ptr')]
    aligned += ['channels'] if channels % 16 == 0 else []
    attrs = {(list(signature).index(name),): [['tt.divisibility', 16]] for name in aligned}
    signature.update({name: 'constexpr' for name in constexprs})
    return signature, constexprs, attrs, dict(num_warps=TILE['num_warps'])


# Representative constexprs: the baseline's spatial cross-attention (1 level, 8 points, 32
# channels) and temporal self-attention (2 levels of BEV, 4 points, 32 channels).
SHAPES = {'sca': (1, 8, 32), 'tsa': (2, 4, 32)}
AOT_SPECS = {
    '_msda_forward_kernel': {
        shape: (lambda dtype, s=s: _spec(dtype, *s, backward=False))
        for shape, s in SHAPES.items()},
    '_msda_backward_kernel': {
        **{f'{shape}-atomic': (lambda dtype, s=s: _spec(dtype, *s, backward=True))
           for shape, s in SHAPES.items()},
        **{f'{shape}-csr': (lambda dtype, s=s: _spec(dtype, *s, backward=True,
                                                     value_grad=False))
           for shape, s in SHAPES.items()}},
}


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


def _on_device(tensor):
    """Launch on the tensor's GPU, not the current one; nothing to do on CPU."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def _launch_config(sampling_locations, value):
    """Grid, BLOCK_Q and BLOCK_C of a call."""
    bs, num_queries, heads = sampling_locations.shape[:3]
    block_c = triton.next_power_of_2(value.shape[-1])
    block_q = tile_queries(value.shape[-1])
    return (triton.cdiv(num_queries, block_q), bs * heads), block_q, block_c


class _MSDATriton(torch.autograd.Function):

    @staticmethod
    @torch.amp.custom_fwd(device_type='cuda')
    def forward(ctx, value, value_spatial_shapes, sampling_locations, attention_weights,
                value_grad):
        value = value.contiguous()
        sampling_locations = sampling_locations.contiguous()
        attention_weights = attention_weights.contiguous()
        bs, num_values, heads, channels = value.shape
        _, num_queries, _, levels, points, _ = sampling_locations.shape
        shapes, starts = _level_tables(value_spatial_shapes, value.device)
        out = value.new_empty(bs, num_queries, heads, channels)
        grid, block_q, block_c = _launch_config(sampling_locations, value)
        with _on_device(value):
            _msda_forward_kernel[grid](
                value, shapes, starts, sampling_locations, attention_weights, out,
                num_values, num_queries, heads, channels, LEVELS=levels, POINTS=points,
                BLOCK_Q=block_q, BLOCK_C=block_c, num_warps=TILE['num_warps'])
        ctx.save_for_backward(value, shapes, starts, sampling_locations, attention_weights)
        ctx.value_spatial_shapes = value_spatial_shapes
        ctx.value_grad = value_grad
        return out.view(bs, num_queries, heads * channels)

    @staticmethod
    @torch.amp.custom_bwd(device_type='cuda')
    def backward(ctx, grad_out):
        value, shapes, starts, sampling_locations, attention_weights = ctx.saved_tensors
        bs, num_values, heads, channels = value.shape
        _, num_queries, _, levels, points, _ = sampling_locations.shape
        grad_out = grad_out.contiguous()
        atomic = ctx.value_grad == 'atomic' and ctx.needs_input_grad[0]
        grad_value = torch.zeros(value.shape if atomic else (1,), dtype=torch.float32,
                                 device=value.device)
        grad_loc = torch.empty(sampling_locations.shape, dtype=torch.float32,
                               device=value.device)
        grad_attn = torch.empty(attention_weights.shape, dtype=torch.float32,
                                device=value.device)
        grid, block_q, block_c = _launch_config(sampling_locations, value)
        with _on_device(value):
            _msda_backward_kernel[grid](
                value, shapes, starts, sampling_locations, attention_weights,
                grad_out, grad_value, grad_loc, grad_attn,
                num_values, num_queries, heads, channels, LEVELS=levels, POINTS=points,
                BLOCK_Q=block_q, BLOCK_C=block_c, VALUE_GRAD=atomic,
                num_warps=TILE['num_warps'])
        if ctx.value_grad == 'csr' and ctx.needs_input_grad[0]:
            # custom_bwd turned autocast back on: the sparse product must stay fp32
            with torch.autocast(value.device.type, enabled=False):
                grad_value = value_gradient(grad_out.float(), value.shape,
                                            ctx.value_spatial_shapes,
                                            sampling_locations.float(),
                                            attention_weights.float())
        return (grad_value.to(value.dtype) if ctx.needs_input_grad[0] else None, None,
                grad_loc.to(sampling_locations.dtype), grad_attn.to(attention_weights.dtype),
                None)


def multi_scale_deformable_attn_triton(value, value_spatial_shapes, sampling_locations,
                                       attention_weights, value_grad='atomic'):
    """Multi-scale deformable attention with the Triton kernels; same arguments and result
    as `multi_scale_deformable_attn_pytorch`. Needs CUDA tensors, or CPU tensors with
    TRITON_INTERPRET=1 set before triton is imported. The shapes are a list of (h, w) (the
    dispatcher converts tensors). value_grad: 'atomic' or 'csr' (see the module docstring)."""
    if triton is None:
        raise RuntimeError('the Triton backend needs the triton package (pip install triton)')
    if value_grad not in VALUE_GRADS:
        raise ValueError(f"value_grad '{value_grad}' is unknown; choose one of {VALUE_GRADS}")
    return _MSDATriton.apply(value, value_spatial_shapes, sampling_locations,
                             attention_weights, value_grad)
