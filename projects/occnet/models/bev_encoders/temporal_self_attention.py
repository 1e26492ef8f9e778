"""Temporal self-attention: BEV queries attend to [aligned previous BEV, current BEV]."""
import torch
import torch.nn as nn

from occnet.models.bev_encoders.attention_init import (init_attention_projections,
                                                       init_deformable_offsets)
from occnet.ops import multi_scale_deformable_attn
from occnet.registry import MODELS


@MODELS.register_module()
class TemporalSelfAttention(nn.Module):
    """Deformable self-attention over two BEV maps: the previous BEV (already aligned to the
    current frame by ego motion) and the current queries. The two maps are treated as two
    levels of one deformable attention, so the softmax runs jointly over both frames' points.

    Args:
        embed_dims: channels C of the BEV queries.
        num_heads: attention heads (C divisible by it).
        num_points: sampling points per head and frame.
        dropout: dropout on the output before the residual.
    """

    num_frames = 2

    def __init__(self, embed_dims=256, num_heads=8, num_points=4, dropout=0.1):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} not divisible by num_heads {num_heads}')
        self.embed_dims, self.num_heads, self.num_points = embed_dims, num_heads, num_points
        # offsets and weights are predicted from [query + pos, aligned previous BEV]
        self.sampling_offsets = nn.Linear(
            2 * embed_dims, num_heads * self.num_frames * num_points * 2)
        self.attention_weights = nn.Linear(
            2 * embed_dims, num_heads * self.num_frames * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        init_deformable_offsets(self.sampling_offsets, num_heads, self.num_frames, num_points)
        init_attention_projections(self.attention_weights, self.value_proj, self.output_proj)

    def forward(self, query, query_pos, prev_bev, ref_2d, bev_hw):
        """
        Args:
            query: (B, HW, C) current BEV queries.
            query_pos: (1 or B, HW, C) positional embedding.
            prev_bev: (B, HW, C) previous BEV aligned to the current grid; pass `query`
                itself where there is no history.
            ref_2d: (HW, 2) normalised cell locations (u along columns, v along rows).
            bev_hw: (bev_h, bev_w).
        Returns:
            (B, HW, C) query + attention output.
        """
        batch, num_queries, channels = query.shape
        bev_h, bev_w = bev_hw
        query_with_pos = query + query_pos
        heads, frames, points = self.num_heads, self.num_frames, self.num_points
        value = self.value_proj(torch.cat([prev_bev, query], dim=1))
        value = value.view(batch, frames * num_queries, heads, channels // heads)
        offset_input = torch.cat([query_with_pos, prev_bev], dim=-1)
        offsets = self.sampling_offsets(offset_input).view(
            batch, num_queries, heads, frames, points, 2)
        weights = self.attention_weights(offset_input).view(
            batch, num_queries, heads, frames * points).softmax(-1)
        weights = weights.view(batch, num_queries, heads, frames, points)
        normaliser = offsets.new_tensor([bev_w, bev_h])
        locations = ref_2d.view(1, num_queries, 1, 1, 1, 2) + offsets / normaliser
        shapes = [(bev_h, bev_w)] * frames
        out = multi_scale_deformable_attn(value, shapes, locations, weights)
        return query + self.dropout(self.output_proj(out))
