"""Spatial cross-attention: each BEV pillar attends to the camera pixels its anchors hit."""
import torch
import torch.nn as nn

from occnet.models.bev_encoders.attention_init import (init_attention_projections,
                                                       init_deformable_offsets)
from occnet.ops import multi_scale_deformable_attn
from occnet.registry import MODELS

# Sampling points start exactly on the projected anchors (the usual radial spread moves them
# several feature cells away and measurably slowed learning in the CPU demo).
OFFSET_INIT_SCALE = 0.0


def select_camera_queries(visible):
    """Per (sample, camera), the BEV queries whose pillar hits that camera.

    Args:
        visible: (B, N, HW, D) bool, anchor d of query q lands inside camera n.
    Returns:
        index: (B, N, L) long, query indices, hits first (L = most hits of any (b, n) pair).
        valid: (B, N, L) bool, False on padding slots.
        hit: (B, N, HW) bool, the pillar is seen by the camera.
    Each (b, n) pair uses its own mask, so batch entries never share a selection.
    """
    hit = visible.any(-1)
    counts = hit.sum(-1)  # (B, N)
    max_len = max(int(counts.max()), 1)
    order = torch.argsort((~hit).to(torch.uint8), dim=-1, stable=True)[..., :max_len]
    valid = torch.arange(max_len, device=hit.device) < counts[..., None]
    return order, valid, hit


@MODELS.register_module()
class SpatialCrossAttention(nn.Module):
    """Deformable cross-attention from BEV pillars to multi-camera, multi-level features.

    Every pillar has D height anchors projected into each camera; a camera contributes only
    to pillars it sees, and the result is averaged over those cameras.

    Args:
        embed_dims: channels C.
        num_heads: attention heads.
        num_levels: image feature levels.
        num_points: sampling points per head and level, split evenly over the D anchors.
        num_anchors: D, anchors per pillar.
        dropout: dropout on the output before the residual.
    """

    def __init__(self, embed_dims=256, num_heads=8, num_levels=1, num_points=8, num_anchors=4,
                 dropout=0.1):
        super().__init__()
        if num_points % num_anchors:
            raise ValueError(f'num_points {num_points} must be a multiple of the pillar '
                             f'anchors {num_anchors}')
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.num_levels, self.num_points, self.num_anchors = num_levels, num_points, num_anchors
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        init_deformable_offsets(self.sampling_offsets, num_heads, num_levels, num_points,
                                scale=OFFSET_INIT_SCALE)
        init_attention_projections(self.attention_weights, self.value_proj, self.output_proj)

    def forward(self, query, query_pos, img_feats, spatial_shapes, ref_cam, visible):
        """
        Args:
            query: (B, HW, C) BEV queries.
            query_pos: (1 or B, HW, C) positional embedding.
            img_feats: (B, N, S, C) flattened multi-level camera features, S = sum h_l * w_l.
            spatial_shapes: list of (h_l, w_l) per level.
            ref_cam: (B, N, HW, D, 2) anchor locations in each camera, normalised to [0, 1].
            visible: (B, N, HW, D) bool.
        Returns:
            (B, HW, C) query + attention output.
        """
        batch, num_queries, channels = query.shape
        num_cams = img_feats.shape[1]
        heads, levels, points, anchors = (self.num_heads, self.num_levels, self.num_points,
                                          self.num_anchors)
        index, valid, hit = select_camera_queries(visible)
        max_len = index.shape[-1]
        # gather the selected queries and their anchors per (b, n): (B*N, L, ...)
        query_with_pos = (query + query_pos).unsqueeze(1).expand(-1, num_cams, -1, -1)
        picked = torch.gather(query_with_pos, 2, index[..., None].expand(-1, -1, -1, channels))
        picked = picked.flatten(0, 1)
        picked_ref = torch.gather(
            ref_cam, 2, index[..., None, None].expand(-1, -1, -1, anchors, 2)).flatten(0, 1)

        value = self.value_proj(img_feats).flatten(0, 1)
        value = value.view(batch * num_cams, -1, heads, channels // heads)
        offsets = self.sampling_offsets(picked).view(
            batch * num_cams, max_len, heads, levels, points // anchors, anchors, 2)
        normaliser = offsets.new_tensor([[w, h] for h, w in spatial_shapes])
        offsets = offsets / normaliser.view(1, 1, 1, levels, 1, 1, 2)
        locations = picked_ref.view(batch * num_cams, max_len, 1, 1, 1, anchors, 2) + offsets
        locations = locations.flatten(4, 5)  # (B*N, L, heads, levels, points, 2)
        weights = self.attention_weights(picked).view(
            batch * num_cams, max_len, heads, levels * points).softmax(-1)
        weights = weights.view(batch * num_cams, max_len, heads, levels, points)
        out = multi_scale_deformable_attn(value, spatial_shapes, locations, weights)
        out = out.view(batch, num_cams, max_len, channels) * valid[..., None]

        # scatter back to the BEV slots (accumulated in the query's precision, fp32 under
        # autocast) and average over the cameras that see each pillar
        slots = query.new_zeros(batch, num_queries, channels)
        slots.scatter_add_(1, index.flatten(1, 2)[..., None].expand(-1, -1, channels),
                           out.flatten(1, 2).to(slots.dtype))
        num_views = hit.sum(1).clamp(min=1).to(slots.dtype)  # (B, HW)
        slots = slots / num_views[..., None]
        return query + self.dropout(self.output_proj(slots))
