"""Multi-scale deformable attention (Deformable DETR) in PyTorch.

Shapes (contract 7 of shared/DESIGN.md):
    value               (bs, sum_l H_l * W_l, num_heads, head_dims)
    value_spatial_shapes (num_levels, 2) int, rows (H_l, W_l), levels concatenated in `value`
    sampling_locations  (bs, num_queries, num_heads, num_levels, num_points, 2), (x, y) in [0, 1]
                        of the level's width and height (0 = left/top edge, 1 = right/bottom edge)
    attention_weights   (bs, num_queries, num_heads, num_levels, num_points)
    returns             (bs, num_queries, num_heads * head_dims)
Sampling is bilinear with zero padding and align_corners=False, like `F.grid_sample`.
"""
import torch
import torch.nn.functional as F


def _as_shape_list(value_spatial_shapes):
    if isinstance(value_spatial_shapes, torch.Tensor):
        return [(int(h), int(w)) for h, w in value_spatial_shapes.tolist()]
    return [(int(h), int(w)) for h, w in value_spatial_shapes]


def multi_scale_deformable_attn_pytorch(value, value_spatial_shapes, sampling_locations,
                                        attention_weights):
    """Reference implementation with one `F.grid_sample` call per level."""
    bs, _, num_heads, head_dims = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    shapes = _as_shape_list(value_spatial_shapes)
    value_per_level = value.split([h * w for h, w in shapes], dim=1)
    grids = 2.0 * sampling_locations - 1.0  # grid_sample wants [-1, 1]
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
    return output.transpose(1, 2).contiguous()


def multi_scale_deformable_attn(value, value_spatial_shapes, sampling_locations,
                                attention_weights):
    """Multi-scale deformable attention; picks the fastest correct backend for the device.

    Only the PyTorch reference backend exists so far; faster backends plug in here.
    """
    return multi_scale_deformable_attn_pytorch(value, value_spatial_shapes, sampling_locations,
                                               attention_weights)
