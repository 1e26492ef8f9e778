"""Voxel pooling (Lift-Splat-Shoot, BEVDet's bev_pool_v2) in plain torch: camera context
features, weighted by a predicted depth distribution, summed into the voxels (or BEV cells)
their frustum points fall in.

    out[b, v, :] = sum over frustum points (n, d, h, w) of batch element b inside voxel v of
                   depth[b, n, d, h, w] * feats[b, n, h, w, :]

Let S be the sparse (output rows) x (feature rows) matrix whose entry (v, f) sums the depth
values of the points of feature row f that fall in v. Then out = S @ feats, d feats = S^T @
grad_out and d depth at a point i = <grad_out[voxel(i)], feats[feature(i)]>. A plan, made
once per frame from the points' positions (`pooling_plan`, cached by `cached_pooling_plan`
while the calibration repeats), holds the points sorted by output row and by feature row
with their row pointers, so that:

- forward: out = S @ feats is one `F.embedding_bag(mode='sum', per_sample_weights=depth)`
  with a bag per output row;
- d feats = S^T @ grad_out is the same call with a bag per feature row over the rows of
  grad_out;
- d depth: on CPU one sampled dense-dense product (`torch.sparse.sampled_addmm`) at the
  pattern of S; elsewhere a row-wise dot of gathered rows, CHUNK_POINTS points at a time.

No (points x C) product is ever built. benchmarks/voxel_pooling.py compares this with sparse
CSR matmuls, a chunked gather-scale-index_add (bev_pool-like) and `voxel_pool_reference`.

Grid convention: `grid_range` = (x_min, y_min, z_min, x_max, y_max, z_max) metres and
`grid_shape` = (X, Y, Z) voxels; a point at p is in voxel x = floor((p_x - x_min) * X /
(x_max - x_min)) (same for y, z) when x_min <= p_x < x_max (a point on a max edge is
outside). Output rows are flat indices ((b * Z + z) * Y + y) * X + x, so the output is
(B, Z, Y, X, C): the label grid's [x, y, z] order reversed, and z * Y * X + y * X + x is the
labels' index1d. When Z == 1, or with `collapse_z`, the z index is dropped (points of every
height sum into their BEV cell) and the output is (B, Y, X, C).

Index tensors are int64: the counts they index (points B*N*D*H*W, output rows B*Z*Y*X) can
pass 2^31 at large batches, and on CPU int64 indexing measured faster than int32 here.
"""
import hashlib
import warnings
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

CHUNK_POINTS = 2 ** 18  # points per chunk of the gather-dot depth gradient (2 x 64 MB at C=64)
PLAN_CACHE_SIZE = 8  # plans kept by cached_pooling_plan, least recently used dropped first


class PoolingPlan(NamedTuple):
    """Where every kept frustum point goes, in two orders. K = kept points, R = output rows
    (B*Z*Y*X, or B*Y*X for BEV), F = feature rows (B*N*H*W). All tensors int64, on the
    device of the points they were made from.

    Voxel-major (sorted by output row, then feature row, then depth bin):
        depth_index (K,): flat index into depth.view(-1) of depth (B, N, D, H, W).
        feat_index (K,): row of feats.view(-1, C) of feats (B, N, H, W, C).
        out_index (K,): output row.
        out_ptr (R + 1,): the points of output row r are [out_ptr[r], out_ptr[r + 1]).
    Feature-major (sorted by feature row, then depth bin):
        feat_depth_index (K,), feat_out_index (K,): as above, in this order.
        feat_ptr (F + 1,): the points of feature row f are [feat_ptr[f], feat_ptr[f + 1]).
    depth_shape: (B, N, D, H, W) of the depth this plan pools.
    out_shape: (B, Z, Y, X), or (B, Y, X) for BEV.
    """
    depth_index: torch.Tensor
    feat_index: torch.Tensor
    out_index: torch.Tensor
    out_ptr: torch.Tensor
    feat_depth_index: torch.Tensor
    feat_out_index: torch.Tensor
    feat_ptr: torch.Tensor
    depth_shape: tuple
    out_shape: tuple


def grid_out_shape(batch, grid_shape, collapse_z=False):
    """(B, Z, Y, X), or (B, Y, X) when Z == 1 or `collapse_z`, for grid_shape (X, Y, Z)."""
    size_x, size_y, size_z = grid_shape
    if size_z == 1 or collapse_z:
        return (batch, size_y, size_x)
    return (batch, size_z, size_y, size_x)


def voxel_index(points, grid_range, grid_shape, collapse_z=False):
    """Flat voxel index of points within one batch element, -1 outside the grid.

    Args:
        points: (..., 3) metres in the grid's frame.
        grid_range: (x_min, y_min, z_min, x_max, y_max, z_max) metres.
        grid_shape: (X, Y, Z) voxels.
        collapse_z: drop z from the index (z still decides inside / outside).
    Returns:
        (...) int64: (z * Y + y) * X + x (y * X + x when Z == 1 or collapse_z); -1 for a
        point outside [min, max) on some axis, or not finite.
    """
    lows, highs = [float(v) for v in grid_range[:3]], [float(v) for v in grid_range[3:]]
    index = torch.zeros(points.shape[:-1], dtype=torch.int64, device=points.device)
    inside = torch.ones(points.shape[:-1], dtype=torch.bool, device=points.device)
    for axis in (2, 1, 0):  # z, y, x: Horner's scheme for (z * Y + y) * X + x
        size = int(grid_shape[axis])
        coord = points[..., axis]
        inside &= (coord >= lows[axis]) & (coord < highs[axis])
        if axis == 2 and (size == 1 or collapse_z):
            continue
        scaled = (coord - lows[axis]) * (size / (highs[axis] - lows[axis]))
        # clamp before the cast: rounding may give `size` just below the max edge, and
        # values far outside (or NaN, masked below) must not overflow int64
        cell = torch.nan_to_num(scaled, nan=0.0).clamp_(0, size - 1).floor_().long()
        index = index * size + cell
    return torch.where(inside, index, -1)


def pooling_plan(points, grid_range, grid_shape, collapse_z=False):
    """Sorted indices and row pointers of the frustum points inside the grid.

    Made once per frame (or reused from `cached_pooling_plan`); synchronises with the device
    to count the kept points. `voxel_pool` then makes no host synchronisation.

    Args:
        points: (B, N, D, H, W, 3) metres in the grid's frame: the point of camera n, depth
            bin d, feature pixel (h, w).
        grid_range: (x_min, y_min, z_min, x_max, y_max, z_max) metres.
        grid_shape: (X, Y, Z) voxels.
        collapse_z: pool into BEV cells (B, Y, X), summing over heights.
    Returns:
        PoolingPlan.
    """
    if points.dim() != 6 or points.shape[-1] != 3:
        raise ValueError(f'points must be (B, N, D, H, W, 3) metres, got {tuple(points.shape)}')
    batch, cams, bins, height, width, _ = points.shape
    out_shape = grid_out_shape(batch, grid_shape, collapse_z)
    rows_per_sample = int(np.prod(out_shape[1:]))
    pixels = height * width
    num_rows, num_feats = batch * rows_per_sample, batch * cams * pixels
    device = points.device
    voxel = voxel_index(points.detach(), grid_range, grid_shape, collapse_z)  # (B, N, D, H, W)
    offsets = torch.arange(batch, device=device).view(-1, 1, 1, 1, 1) * rows_per_sample
    out_row = torch.where(voxel >= 0, voxel + offsets, -1)
    # feature-major order (B, N, H, W, D): kept points come out sorted by feature row
    out_row = out_row.permute(0, 1, 3, 4, 2).reshape(num_feats, bins)
    kept_mask = out_row >= 0
    kept = torch.nonzero(kept_mask.reshape(-1)).squeeze(1)  # a host synchronisation
    feat_row, depth_bin = kept // bins, kept % bins
    feat_depth_index = ((feat_row // pixels) * bins + depth_bin) * pixels + feat_row % pixels
    feat_out_index = out_row.reshape(-1)[kept]
    feat_ptr = torch.zeros(num_feats + 1, dtype=torch.int64, device=device)
    torch.cumsum(kept_mask.sum(1), 0, out=feat_ptr[1:])
    # voxel-major: a stable sort by output row keeps feature rows ascending within a row
    # (int32 keys sort about twice as fast on CPU)
    key = feat_out_index.int() if num_rows < 2 ** 31 else feat_out_index
    order = torch.sort(key, stable=True).indices
    out_ptr = torch.zeros(num_rows + 1, dtype=torch.int64, device=device)
    torch.cumsum(torch.bincount(feat_out_index, minlength=num_rows), 0, out=out_ptr[1:])
    return PoolingPlan(depth_index=feat_depth_index[order], feat_index=feat_row[order],
                       out_index=feat_out_index[order], out_ptr=out_ptr,
                       feat_depth_index=feat_depth_index,
                       feat_out_index=feat_out_index, feat_ptr=feat_ptr,
                       depth_shape=(batch, cams, bins, height, width), out_shape=out_shape)


_PLAN_CACHE = OrderedDict()  # key -> PoolingPlan, least recently used first


def _hash_into(digest, item):
    """Feed the dtype, shape and bytes of tensors and arrays, and the repr of anything
    else, into `digest` (sequences item by item)."""
    if isinstance(item, torch.Tensor):
        item = item.detach()
        digest.update(f'tensor {item.dtype} {tuple(item.shape)}'.encode())
        digest.update(item.cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(item, np.ndarray):
        digest.update(f'array {item.dtype} {item.shape}'.encode())
        digest.update(np.ascontiguousarray(item).tobytes())
    elif isinstance(item, (list, tuple)):
        digest.update(f'seq {len(item)}'.encode())
        for part in item:
            _hash_into(digest, part)
    else:
        digest.update(repr(item).encode())


def cached_pooling_plan(geometry, make_points, grid_range, grid_shape, collapse_z=False,
                        device=None):
    """`pooling_plan` of the points `make_points()` returns, reused while `geometry` repeats.

    Valid while `geometry` determines the frustum points completely: the projections
    (lidar2img, or intrinsics and extrinsics), every image-space augmentation (resize, crop,
    flip) and BEV augmentation (rotation, flip) applied to them, the frustum's definition
    (feature size, stride, depth bins) and the batch size and camera count. Anything that
    moves the points and is left out of `geometry` returns a stale plan. With random
    augmentation every frame misses, which costs only the hashing. The last PLAN_CACHE_SIZE
    plans are kept.

    Args:
        geometry: tensors, numpy arrays, numbers and sequences of them; the key is a hash of
            their dtypes, shapes and bytes. CUDA tensors are copied to the host to hash (a
            synchronisation): pass the CPU copies where there are some.
        make_points: () -> points (B, N, D, H, W, 3) metres; called only on a miss.
        grid_range, grid_shape, collapse_z: as in `pooling_plan` (part of the key).
        device: where the plan's tensors live (part of the key); default: wherever
            make_points puts the points.
    Returns:
        PoolingPlan (the same object for equal keys while it stays cached).
    """
    digest = hashlib.blake2b(digest_size=16)
    _hash_into(digest, (geometry, tuple(grid_range), tuple(grid_shape), bool(collapse_z),
                        str(device)))
    key = digest.hexdigest()
    if key in _PLAN_CACHE:
        _PLAN_CACHE.move_to_end(key)
        return _PLAN_CACHE[key]
    points = make_points()
    if device is not None:
        points = points.to(device)
    plan = pooling_plan(points, grid_range, grid_shape, collapse_z)
    _PLAN_CACHE[key] = plan
    while len(_PLAN_CACHE) > PLAN_CACHE_SIZE:
        _PLAN_CACHE.popitem(last=False)
    return plan


def clear_plan_cache():
    """Forget every plan cached by `cached_pooling_plan`."""
    _PLAN_CACHE.clear()


def _sampled_dots(plan, grad_rows, feat_rows):
    """(K,) <grad_rows[out_index[i]], feat_rows[feat_index[i]]> in the plan's voxel-major
    order: the depth gradient of each kept point.

    On CPU one `torch.sparse.sampled_addmm` at the pattern of S (measured fastest here);
    elsewhere `_gathered_dots`, plain torch with no sparse kernels.
    """
    if grad_rows.device.type != 'cpu':
        return _gathered_dots(plan, grad_rows, feat_rows)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter('ignore')
        pattern = torch.sparse_csr_tensor(plan.out_ptr, plan.feat_index,
                                          grad_rows.new_zeros(plan.feat_index.numel()),
                                          size=(grad_rows.shape[0], feat_rows.shape[0]),
                                          check_invariants=False)
        return torch.sparse.sampled_addmm(pattern, grad_rows, feat_rows.t(),
                                          beta=0.0).values()


def _gathered_dots(plan, grad_rows, feat_rows):
    """As `_sampled_dots`, by gathering both rows of CHUNK_POINTS points at a time."""
    dots = grad_rows.new_empty(plan.out_index.numel())
    for start in range(0, dots.numel(), CHUNK_POINTS):
        end = start + CHUNK_POINTS
        dots[start:end] = torch.linalg.vecdot(
            grad_rows.index_select(0, plan.out_index[start:end]),
            feat_rows.index_select(0, plan.feat_index[start:end]))
    return dots


class _VoxelPool(torch.autograd.Function):
    """(depth (B, N, D, H, W), feats (B, N, H, W, C), plan) -> (R, C), both inputs of one
    floating dtype; first-order gradients only."""

    @staticmethod
    def forward(ctx, depth, feats, plan):
        feat_rows = feats.reshape(-1, feats.shape[-1])  # (F, C)
        weights = depth.reshape(-1).index_select(0, plan.depth_index)
        ctx.save_for_backward(depth, feats)
        ctx.plan = plan
        return F.embedding_bag(plan.feat_index, feat_rows, plan.out_ptr, mode='sum',
                               per_sample_weights=weights, include_last_offset=True)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        depth, feats = ctx.saved_tensors
        plan = ctx.plan
        grad_rows = grad_out.contiguous()  # (R, C)
        feat_rows = feats.reshape(-1, feats.shape[-1])
        grad_depth = grad_feats = None
        if ctx.needs_input_grad[0]:
            grad_depth = depth.new_zeros(depth.numel()).index_copy_(
                0, plan.depth_index, _sampled_dots(plan, grad_rows, feat_rows)).view(depth.shape)
        if ctx.needs_input_grad[1]:
            weights = depth.reshape(-1).index_select(0, plan.feat_depth_index)
            grad_feats = F.embedding_bag(plan.feat_out_index, grad_rows, plan.feat_ptr,
                                         mode='sum', per_sample_weights=weights,
                                         include_last_offset=True).view(feats.shape)
        return grad_depth, grad_feats, None


def voxel_pool(depth, feats, plan, out_shape=None):
    """Depth-weighted context features summed into the voxels of `plan`.

    Computes in float64 when either input is float64, else in float32 (also under
    autocast); gradients flow to depth and feats (first order).

    Args:
        depth: (B, N, D, H, W) depth-bin probabilities of N cameras, D bins, H x W pixels.
        feats: (B, N, H, W, C) context features.
        plan: PoolingPlan of the frustum points (B, N, D, H, W, 3), on the inputs' device.
        out_shape: leading output shape, default plan.out_shape ((B, Z, Y, X) or
            (B, Y, X)); any shape with the plan's number of output rows.
    Returns:
        (*out_shape, C): the sum over the frustum points in each voxel of depth x feature;
        zero where no point falls.
    """
    batch, cams, _, height, width = plan.depth_shape
    if tuple(depth.shape) != tuple(plan.depth_shape) or feats.dim() != 5 or \
            tuple(feats.shape[:4]) != (batch, cams, height, width):
        raise ValueError(f'depth {tuple(depth.shape)} and feats {tuple(feats.shape)} do not '
                         f'match the plan: depth must be {tuple(plan.depth_shape)} and feats '
                         f'{(batch, cams, height, width)} + (C,); make the plan from these '
                         'frames\' frustum points')
    if depth.device != plan.out_ptr.device or feats.device != plan.out_ptr.device:
        raise ValueError(f'plan on {plan.out_ptr.device}, depth on {depth.device} and feats on '
                         f'{feats.device}: make the plan from points on the inputs\' device '
                         '(cached_pooling_plan(..., device=...))')
    out_shape = tuple(plan.out_shape if out_shape is None else out_shape)
    if int(np.prod(out_shape)) != plan.out_ptr.numel() - 1:
        raise ValueError(f'out_shape {out_shape} does not hold the plan\'s '
                         f'{plan.out_ptr.numel() - 1} output rows {plan.out_shape}')
    dtype = torch.float64 if torch.float64 in (depth.dtype, feats.dtype) else torch.float32
    with torch.autocast(depth.device.type, enabled=False):
        out = _VoxelPool.apply(depth.to(dtype).contiguous(), feats.to(dtype), plan)
    return out.view(*out_shape, feats.shape[-1])


def voxel_pool_reference(depth, feats, points, grid_range, grid_shape, collapse_z=False):
    """`voxel_pool` in plain autograd torch, for tests and checks: every point's product
    with its feature (B*N*D*H*W x C at once), index_add into the voxels.

    Args:
        depth (B, N, D, H, W), feats (B, N, H, W, C), points (B, N, D, H, W, 3) metres;
        grid_range, grid_shape, collapse_z as in `pooling_plan`.
    Returns:
        (B, Z, Y, X, C), or (B, Y, X, C) for BEV, as `voxel_pool`.
    """
    out_shape = grid_out_shape(depth.shape[0], grid_shape, collapse_z)
    rows_per_sample = int(np.prod(out_shape[1:]))
    num_rows = depth.shape[0] * rows_per_sample
    voxel = voxel_index(points.detach(), grid_range, grid_shape, collapse_z)
    offsets = torch.arange(depth.shape[0], device=depth.device).view(-1, 1, 1, 1, 1)
    rows = torch.where(voxel >= 0, voxel + offsets * rows_per_sample, num_rows)  # spare row
    products = depth[..., None] * feats[:, :, None]  # (B, N, D, H, W, C)
    out = products.new_zeros(num_rows + 1, feats.shape[-1]).index_add(
        0, rows.reshape(-1), products.reshape(-1, feats.shape[-1]))
    return out[:num_rows].view(*out_shape, feats.shape[-1])
