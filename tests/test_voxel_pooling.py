"""Voxel pooling (occnet.ops.voxel_pooling): the plan, its cache, voxel_pool and the reference
against a per-point Python loop (values and gradients), a hand-placed point, BEV forms."""
import math

import pytest
import torch

from occnet.ops import (cached_pooling_plan, pooling_plan, voxel_pool,
                        voxel_pool_reference)
from occnet.ops import voxel_pooling

# x: 4 voxels of 1 m, y: 3 of 0.5 m, z: 2 of 1 m; every bound exact in binary
GRID_RANGE = (-2.0, 0.0, -1.0, 2.0, 1.5, 1.0)
GRID_SHAPE = (4, 3, 2)
B, N, D, H, W, C = 2, 2, 3, 2, 3, 4


def tiny_case(seed=0):
    """float64 depth (B, N, D, H, W) that sums to 1 over D, feats (B, N, H, W, C) made by
    permuting (B, N, C, H, W) (not contiguous), and points (B, N, D, H, W, 3) on a 0.25 m
    lattice spanning past the grid, so that many lie on voxel faces, on the min and max
    edges and outside."""
    gen = torch.Generator().manual_seed(seed)
    depth = torch.rand(B, N, D, H, W, generator=gen, dtype=torch.float64).softmax(2)
    feats = torch.randn(B, N, C, H, W, generator=gen, dtype=torch.float64).permute(
        0, 1, 3, 4, 2)
    lows = torch.tensor([-2.5, -0.5, -1.5], dtype=torch.float64)
    steps = torch.tensor([5.0, 2.5, 3.0], dtype=torch.float64) / 0.25
    lattice = torch.floor(torch.rand(B, N, D, H, W, 3, generator=gen, dtype=torch.float64)
                          * (steps + 1))
    points = lows + lattice * 0.25
    points[0, 0, 0, 0, 0] = torch.tensor([2.0, 0.5, 0.0])  # x on the max edge: outside
    points[0, 0, 1, 0, 0] = torch.tensor([-2.0, 0.0, -1.0])  # min corner: voxel (0, 0, 0)
    points[1, 1, :, 1, 2] = torch.tensor([0.25, 0.75, 0.5])  # all 3 bins in one voxel
    return depth, feats, points


def loop_pool(depth, feats, points, collapse_z=False):
    """The definition, point by point in Python (differentiable): (B, Z, Y, X, C), or
    (B, Y, X, C) when collapse_z."""
    x_min, y_min, z_min, x_max, y_max, z_max = GRID_RANGE
    size_x, size_y, size_z = GRID_SHAPE
    sizes = ((x_max - x_min) / size_x, (y_max - y_min) / size_y, (z_max - z_min) / size_z)
    cells = {}
    for b in range(B):
        for n in range(N):
            for d in range(D):
                for h in range(H):
                    for w in range(W):
                        px, py, pz = points[b, n, d, h, w].tolist()
                        if not (x_min <= px < x_max and y_min <= py < y_max
                                and z_min <= pz < z_max):
                            continue
                        ix = math.floor((px - x_min) / sizes[0])
                        iy = math.floor((py - y_min) / sizes[1])
                        iz = 0 if collapse_z else math.floor((pz - z_min) / sizes[2])
                        key = (b, iz, iy, ix)
                        cells[key] = cells.get(key, 0) + depth[b, n, d, h, w] * feats[b, n, h, w]
    zero = torch.zeros(C, dtype=depth.dtype)
    rows = [cells.get((b, z, y, x), zero) for b in range(B)
            for z in range(1 if collapse_z else size_z) for y in range(size_y)
            for x in range(size_x)]
    out = torch.stack(rows)
    return out.view(B, size_y, size_x, C) if collapse_z else out.view(B, size_z, size_y,
                                                                       size_x, C)


def values_and_grads(pool, depth, feats, grad_seed=1):
    """pool(depth, feats) and the gradients of depth and feats for a random grad_out."""
    depth = depth.detach().requires_grad_()
    feats = feats.detach().requires_grad_()
    out = pool(depth, feats)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed),
                           dtype=out.dtype)
    out.backward(grad_out)
    return out.detach(), depth.grad, feats.grad


@pytest.mark.parametrize('collapse_z', [False, True], ids=['voxels', 'bev'])
def test_pool_and_reference_equal_the_loop(collapse_z, monkeypatch):
    monkeypatch.setattr(voxel_pooling, 'CHUNK_POINTS', 7)  # several chunks in _gathered_dots
    depth, feats, points = tiny_case()
    plan = pooling_plan(points, GRID_RANGE, GRID_SHAPE, collapse_z=collapse_z)
    assert plan.out_shape == ((B, 3, 4) if collapse_z else (B, 2, 3, 4))
    want = values_and_grads(lambda d, f: loop_pool(d, f, points, collapse_z), depth, feats)
    assert want[0].abs().sum() > 0 and (want[1] == 0).any()  # some points kept, some not
    got = values_and_grads(lambda d, f: voxel_pool(d, f, plan), depth, feats)
    ref = values_and_grads(lambda d, f: voxel_pool_reference(
        d, f, points, GRID_RANGE, GRID_SHAPE, collapse_z), depth, feats)
    for name, a, b, c in zip(('out', 'd depth', 'd feats'), got, ref, want):
        assert a.shape == c.shape, name
        torch.testing.assert_close(a, c, rtol=0, atol=1e-12, msg=name)
        torch.testing.assert_close(b, c, rtol=0, atol=1e-12, msg=name)
    # the gather-dot depth gradient (every device but the CPU) equals sampled_addmm's
    grad_rows = torch.randn(plan.out_ptr.numel() - 1, C, dtype=torch.float64)
    feat_rows = feats.reshape(-1, C)
    torch.testing.assert_close(voxel_pooling._gathered_dots(plan, grad_rows, feat_rows),
                               voxel_pooling._sampled_dots(plan, grad_rows, feat_rows),
                               rtol=0, atol=1e-12)


def test_plan_is_sorted_with_row_pointers():
    depth, _, points = tiny_case()
    plan = pooling_plan(points, GRID_RANGE, GRID_SHAPE)
    kept = int((voxel_pooling.voxel_index(points, GRID_RANGE, GRID_SHAPE) >= 0).sum())
    assert plan.depth_index.numel() == kept and plan.out_ptr[-1] == kept
    assert (plan.out_index.diff() >= 0).all() and (plan.feat_out_index.numel() == kept)
    rows = torch.repeat_interleave(torch.arange(plan.out_ptr.numel() - 1), plan.out_ptr.diff())
    assert torch.equal(rows, plan.out_index)
    feat_rows = torch.repeat_interleave(torch.arange(B * N * H * W), plan.feat_ptr.diff())
    assert torch.equal(feat_rows, (plan.feat_depth_index // (D * H * W)) * H * W
                       + plan.feat_depth_index % (H * W))
    # both orders hold the same points
    assert torch.equal(plan.depth_index.sort().values, plan.feat_depth_index.sort().values)


def test_hand_placed_points_land_in_the_voxels_computed_by_hand():
    grid_range, grid_shape = (-50.0, -50.0, -4.0, 50.0, 50.0, 4.0), (200, 200, 16)
    points = torch.zeros(2, 1, 1, 1, 2, 3)  # (B, N, D, H, W, 3)
    points[0, 0, 0, 0, 0] = torch.tensor([50.0, 0.0, 0.0])  # x on the max edge: outside
    points[0, 0, 0, 0, 1] = torch.tensor([-50.0, -50.0, -4.0])  # min corner: voxel 0
    points[1, 0, 0, 0, 0] = torch.tensor([10.3, -20.6, 1.2])
    points[1, 0, 0, 0, 1] = torch.tensor([0.0, 0.0, 4.0])  # z on the max edge: outside
    # x = floor(60.3 / 0.5) = 120, y = floor(29.4 / 0.5) = 58, z = floor(5.2 / 0.5) = 10
    row = ((1 * 16 + 10) * 200 + 58) * 200 + 120
    plan = pooling_plan(points, grid_range, grid_shape)
    assert plan.out_index.tolist() == [0, row]
    assert plan.depth_index.tolist() == [1, 2]  # flat (b, n, d, h, w) = (0,0,0,0,1), (1,...,0)
    assert plan.feat_index.tolist() == [1, 2]
    depth = torch.tensor([0.5, 0.25, 0.75, 1.0]).view(2, 1, 1, 1, 2)
    feats = torch.arange(8.0).view(2, 1, 1, 2, 2)
    out = voxel_pool(depth, feats, plan)
    assert out.shape == (2, 16, 200, 200, 2)
    assert out[0, 0, 0, 0].tolist() == [0.25 * 2, 0.25 * 3]
    assert out[1, 10, 58, 120].tolist() == [0.75 * 4, 0.75 * 5]
    assert out.count_nonzero() == 4


def test_cache_reuses_the_plan_for_equal_geometry_only():
    voxel_pooling.clear_plan_cache()
    _, _, points = tiny_case()
    calls = []

    def make_points():
        calls.append(1)
        return points

    lidar2img = torch.eye(4).repeat(B, N, 1, 1)
    first = cached_pooling_plan((lidar2img, 16), make_points, GRID_RANGE, GRID_SHAPE)
    again = cached_pooling_plan((lidar2img.clone(), 16), make_points, GRID_RANGE, GRID_SHAPE)
    assert again is first and len(calls) == 1
    moved = lidar2img.clone()
    moved[1, 0, 0, 3] += 1e-3
    assert cached_pooling_plan((moved, 16), make_points, GRID_RANGE, GRID_SHAPE) is not first
    assert cached_pooling_plan((lidar2img, 8), make_points, GRID_RANGE, GRID_SHAPE) \
        is not first
    bev = cached_pooling_plan((lidar2img, 16), make_points, GRID_RANGE, GRID_SHAPE,
                              collapse_z=True)
    assert bev.out_shape == (B, 3, 4) and len(calls) == 4
    for shift in range(voxel_pooling.PLAN_CACHE_SIZE):  # pushes `first` out
        cached_pooling_plan((lidar2img + shift + 1, 16), make_points, GRID_RANGE, GRID_SHAPE)
    assert len(voxel_pooling._PLAN_CACHE) == voxel_pooling.PLAN_CACHE_SIZE
    assert cached_pooling_plan((lidar2img, 16), make_points, GRID_RANGE, GRID_SHAPE) \
        is not first
    voxel_pooling.clear_plan_cache()


def test_gradcheck():
    depth, feats, points = tiny_case(seed=2)
    plan = pooling_plan(points, GRID_RANGE, GRID_SHAPE)
    inputs = (depth.detach().requires_grad_(), feats.detach().requires_grad_())
    assert torch.autograd.gradcheck(lambda d, f: voxel_pool(d, f, plan), inputs)


def test_bev_from_one_z_slice_equals_collapsed_z():
    depth, feats, points = tiny_case(seed=3)
    one_slice = pooling_plan(points, GRID_RANGE, GRID_SHAPE[:2] + (1,))
    collapsed = pooling_plan(points, GRID_RANGE, GRID_SHAPE, collapse_z=True)
    voxels = voxel_pool(depth, feats, pooling_plan(points, GRID_RANGE, GRID_SHAPE))
    bev = voxel_pool(depth, feats, one_slice)
    assert bev.shape == (B, 3, 4, C)
    torch.testing.assert_close(bev, voxel_pool(depth, feats, collapsed), rtol=0, atol=0)
    torch.testing.assert_close(bev, voxels.sum(1), rtol=0, atol=1e-12)
    torch.testing.assert_close(voxel_pool_reference(depth, feats, points, GRID_RANGE,
                                                    GRID_SHAPE[:2] + (1,)), bev)


def test_no_point_inside_and_shape_errors():
    depth, feats, points = tiny_case()
    plan = pooling_plan(points + 100.0, GRID_RANGE, GRID_SHAPE)
    assert plan.depth_index.numel() == 0
    out, grad_depth, grad_feats = values_and_grads(lambda d, f: voxel_pool(d, f, plan),
                                                   depth, feats)
    assert out.shape == (B, 2, 3, 4, C) and not out.any()
    assert not grad_depth.any() and not grad_feats.any()
    with pytest.raises(ValueError, match='do not match the plan'):
        voxel_pool(depth[:1], feats[:1], plan)
    with pytest.raises(ValueError, match='out_shape'):
        voxel_pool(depth, feats, plan, out_shape=(B, 3, 4))
    # float32 inputs pool in float32; mixed float32 / float64 in float64
    assert voxel_pool(depth.float(), feats.float(), plan).dtype == torch.float32
    assert voxel_pool(depth.float(), feats, plan).dtype == torch.float64


def test_single_camera_single_row_plan():
    """Size-1 batch, camera and feature-row dimensions (their reshapes are not views)."""
    points = torch.tensor([[0.5, 0.5, 0.5], [1.5, 0.5, 0.5], [5.0, 0.5, 0.5]]).view(
        1, 1, 1, 1, 3, 3).expand(1, 1, 2, 1, 3, 3)
    plan = pooling_plan(points, (0.0, 0.0, 0.0, 2.0, 1.0, 1.0), (2, 1, 1))
    out = voxel_pool(torch.ones(1, 1, 2, 1, 3), torch.ones(1, 1, 1, 3, 2), plan)
    assert out.shape == (1, 1, 2, 2) and out[0, 0, :, 0].tolist() == [2.0, 2.0]


def test_half_precision_inputs_pool_in_fp32():
    points = torch.tensor([[0.5, 0.5, 0.5], [1.5, 0.5, 0.5], [0.7, 0.2, 0.1]]).view(
        1, 1, 1, 1, 3, 3)
    plan = pooling_plan(points, (0.0, 0.0, 0.0, 2.0, 1.0, 1.0), (2, 1, 1))
    depth = torch.full((1, 1, 1, 1, 3), 0.3, dtype=torch.bfloat16)
    feats = torch.full((1, 1, 1, 3, 2), 1.0 / 3.0, dtype=torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = voxel_pool(depth, feats, plan)
    assert out.dtype == torch.float32
    want = 2 * depth[0, 0, 0, 0, 0].float() * feats[0, 0, 0, 0, 0].float()  # 2 points in x=0
    assert out[0, 0, 0, 0].item() == pytest.approx(want.item(), rel=1e-6)
