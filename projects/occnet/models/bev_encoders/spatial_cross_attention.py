"""Spatial cross-attention: each BEV pillar attends to the camera pixels its anchors hit,
optionally weighted by how likely a depth map says each anchor's depth is (FB-OCC)."""
from typing import NamedTuple, Optional

import torch
import torch.nn as nn

from occnet.models.bev_encoders.attention_init import (init_attention_projections,
                                                       init_deformable_offsets)
from occnet.ops import multi_scale_deformable_attn
from occnet.registry import MODELS


class CameraQueries(NamedTuple):
    """Which queries each camera sees, computed once per frame (select_camera_queries).

    index: (B, N, L) long, query indices, hits first (L = most hits of any (b, n) pair).
    valid: (B, N, L) bool, False on padding slots.
    ref: (B * N, L, D, 2) fp32 anchor locations of the selected queries in the camera,
        normalised to [0, 1] of the padded image.
    num_views: (B, HW) fp32, cameras that see each query (at least 1).
    depth: (B * N, L, D) fp32 anchor depths along the camera axis, metres, or None.
    depth_weight: (B * N, L, D) weight of each anchor's sampling points (FB-OCC's depth
        probability, depth_aware_attention.anchor_depth_weights), or None (weight 1).
    """
    index: torch.Tensor
    valid: torch.Tensor
    ref: torch.Tensor
    num_views: torch.Tensor
    depth: Optional[torch.Tensor] = None
    depth_weight: Optional[torch.Tensor] = None


def select_camera_queries(ref_cam, visible, depth=None):
    """Per (sample, camera), the BEV queries whose pillar hits that camera.

    Args:
        ref_cam: (B, N, HW, D, 2) anchor locations in each camera, normalised to [0, 1].
        visible: (B, N, HW, D) bool, anchor d of query q lands inside camera n.
        depth: optional (B, N, HW, D) anchor depths, metres, selected alongside.
    Returns:
        CameraQueries. Each (b, n) pair uses its own mask, so batch entries never share a
        selection. It depends only on the frame's geometry: compute it once per frame and
        share it across layers (it costs a sort and one device-to-host sync).
    """
    hit = visible.any(-1)
    counts = hit.sum(-1)  # (B, N)
    max_len = max(int(counts.max()), 1)
    order = torch.argsort((~hit).to(torch.uint8), dim=-1, stable=True)[..., :max_len]
    valid = torch.arange(max_len, device=hit.device) < counts[..., None]
    anchors = ref_cam.shape[-2]
    ref = torch.gather(ref_cam.float(), 2,
                       order[..., None, None].expand(-1, -1, -1, anchors, 2)).flatten(0, 1)
    num_views = hit.sum(1).clamp(min=1).float()
    if depth is not None:
        depth = torch.gather(depth.float(), 2,
                             order[..., None].expand(-1, -1, -1, anchors)).flatten(0, 1)
    return CameraQueries(order, valid, ref, num_views, depth)


@MODELS.register_module()
class SpatialCrossAttention(nn.Module):
    """Deformable cross-attention from BEV pillars to multi-camera, multi-level features.

    Every pillar has D height anchors projected into each camera; a camera contributes only
    to pillars it sees, and the result is averaged over those cameras.

    Args:
        embed_dims: channels C.
        num_heads: attention heads.
        num_levels: image feature levels.
        num_points: sampling points per head and level, split evenly over the D anchors
            (point p belongs to anchor p % D, as in BEVFormer).
        num_anchors: D, anchors per pillar.
        dropout: dropout on the output before the residual.
        offset_init_scale: point p starts (p + 1) * scale feature cells from its anchor along
            its head's direction. 1.0 is BEVFormer's initialisation; a smaller scale keeps
            the points nearer their anchors. 0 would put every point of an anchor on the same
            spot with the same gradient, for the whole training.
    When the frame's CameraQueries carry `depth_weight`, each point's softmaxed attention
    weight is multiplied by its anchor's weight, without renormalising (FB-OCC's depth-aware
    attention); without it, or with all weights 1, this is BEVFormer's attention exactly.
    Sampling locations are computed in fp32 under autocast (the offset projection too).
    """

    def __init__(self, embed_dims=256, num_heads=8, num_levels=1, num_points=8, num_anchors=4,
                 dropout=0.1, offset_init_scale=1.0):
        super().__init__()
        if num_points % num_anchors:
            raise ValueError(f'num_points {num_points} must be a multiple of the pillar '
                             f'anchors {num_anchors}')
        if num_points > num_anchors and offset_init_scale <= 0:
            raise ValueError(f'offset_init_scale {offset_init_scale}: with {num_points} points '
                             f'over {num_anchors} anchors the points of an anchor would start '
                             'on one spot and never separate; use a positive scale')
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.num_levels, self.num_points, self.num_anchors = num_levels, num_points, num_anchors
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        init_deformable_offsets(self.sampling_offsets, num_heads, num_levels, num_points,
                                scale=offset_init_scale)
        init_attention_projections(self.attention_weights, self.value_proj, self.output_proj)

    def sampling_locations(self, picked, ref, spatial_shapes):
        """fp32 (B*N, L, heads, levels, points, 2) locations in [0, 1] from the selected
        queries picked (B*N, L, C) and their anchors ref (B*N, L, D, 2)."""
        rows, max_len = picked.shape[:2]
        heads, levels, points, anchors = (self.num_heads, self.num_levels, self.num_points,
                                          self.num_anchors)
        with torch.autocast(picked.device.type, enabled=False):
            offsets = self.sampling_offsets(picked.float()).view(
                rows, max_len, heads, levels, points // anchors, anchors, 2)
            normaliser = offsets.new_tensor([[w, h] for h, w in spatial_shapes])
            offsets = offsets / normaliser.view(1, 1, 1, levels, 1, 1, 2)
            locations = ref.float().view(rows, max_len, 1, 1, 1, anchors, 2) + offsets
        return locations.flatten(4, 5)

    def forward(self, query, query_pos, img_feats, spatial_shapes, cams):
        """
        Args:
            query: (B, HW, C) BEV queries.
            query_pos: (1 or B, HW, C) positional embedding added to the queries the offsets
                and weights are predicted from, or None (BEVFormer's encoder).
            img_feats: (B, N, S, C) flattened multi-level camera features, S = sum h_l * w_l.
            spatial_shapes: list of (h_l, w_l) per level.
            cams: CameraQueries of this frame (select_camera_queries).
        Returns:
            (B, HW, C) query + attention output.
        """
        batch, num_queries, channels = query.shape
        num_cams = img_feats.shape[1]
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        max_len = cams.index.shape[-1]
        # gather the selected queries per (b, n): (B*N, L, C)
        query_with_pos = query if query_pos is None else query + query_pos
        query_with_pos = query_with_pos.unsqueeze(1).expand(-1, num_cams, -1, -1)
        picked = torch.gather(query_with_pos, 2,
                              cams.index[..., None].expand(-1, -1, -1, channels)).flatten(0, 1)
        value = self.value_proj(img_feats).flatten(0, 1)
        value = value.view(batch * num_cams, -1, heads, channels // heads)
        locations = self.sampling_locations(picked, cams.ref, spatial_shapes)
        weights = self.attention_weights(picked).view(
            batch * num_cams, max_len, heads, levels * points).softmax(-1)
        weights = weights.view(batch * num_cams, max_len, heads, levels, points)
        if cams.depth_weight is not None:  # point p belongs to anchor p % D
            per_point = cams.depth_weight[..., torch.arange(points, device=query.device)
                                          % self.num_anchors]  # (B*N, L, points)
            weights = weights * per_point[:, :, None, None, :].to(weights.dtype)
        out = multi_scale_deformable_attn(value, spatial_shapes, locations, weights)
        out = out.view(batch, num_cams, max_len, channels) * cams.valid[..., None]

        # scatter back to the BEV slots (accumulated in the query's precision, fp32 under
        # autocast) and average over the cameras that see each pillar
        slots = query.new_zeros(batch, num_queries, channels)
        slots.scatter_add_(1, cams.index.flatten(1, 2)[..., None].expand(-1, -1, channels),
                           out.flatten(1, 2).to(slots.dtype))
        slots = slots / cams.num_views.to(slots.dtype)[..., None]
        return query + self.dropout(self.output_proj(slots))
