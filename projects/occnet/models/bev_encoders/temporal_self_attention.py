"""Temporal self-attention: BEV queries attend to [aligned previous BEV, current BEV]."""
import torch
import torch.nn as nn

from occnet.models.bev_encoders.attention_init import (init_attention_projections,
                                                       init_deformable_offsets)
from occnet.ops import multi_scale_deformable_attn
from occnet.registry import MODELS

TSA_MODES = ('published', 'joint')


@MODELS.register_module()
class TemporalSelfAttention(nn.Module):
    """Deformable self-attention over two BEV maps ("slots"): the previous BEV, already
    aligned to the current frame by ego motion, and a current one.

    Two forms (`mode`):
        'published' (BEVFormer): the slots are [aligned previous BEV, the encoder's initial
            BEV queries]; a sample without history uses the layer's input query in both
            slots. The attention weights are a softmax per slot, and the two slots' outputs
            are averaged.
        'joint' (occnet before issue 13): the slots are [aligned previous BEV, the layer's
            input query]; a sample without history uses the initial queries in the previous
            slot. One softmax runs over both slots' points.
    Offsets and weights are predicted from [query + pos, previous slot].

    Args:
        embed_dims: channels C of the BEV queries.
        num_heads: attention heads (C divisible by it).
        num_points: sampling points per head and slot.
        dropout: dropout on the output before the residual.
        mode: 'published' or 'joint'.
    """

    num_frames = 2

    def __init__(self, embed_dims=256, num_heads=8, num_points=4, dropout=0.1,
                 mode='published'):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} not divisible by num_heads {num_heads}')
        if mode not in TSA_MODES:
            raise ValueError(f"temporal self-attention mode '{mode}' is unknown; choose one of "
                             f'{TSA_MODES}')
        self.embed_dims, self.num_heads, self.num_points = embed_dims, num_heads, num_points
        self.mode = mode
        self.sampling_offsets = nn.Linear(
            2 * embed_dims, num_heads * self.num_frames * num_points * 2)
        self.attention_weights = nn.Linear(
            2 * embed_dims, num_heads * self.num_frames * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        init_deformable_offsets(self.sampling_offsets, num_heads, self.num_frames, num_points)
        init_attention_projections(self.attention_weights, self.value_proj, self.output_proj)

    def slots(self, query, initial, prev_bev, has_prev):
        """The (previous, current) slot maps, each (B, HW, C), for this form."""
        if self.mode == 'published':
            prev_fallback, current_with_history = query, initial
        else:
            prev_fallback, current_with_history = initial, query
        if prev_bev is None:
            return prev_fallback, query
        if has_prev is None:
            return prev_bev, current_with_history
        keep = has_prev.view(-1, 1, 1).to(prev_bev.dtype)
        return (prev_bev * keep + prev_fallback * (1 - keep),
                current_with_history * keep + query * (1 - keep))

    def forward(self, query, query_pos, ref_2d, bev_hw, initial, prev_bev=None, has_prev=None):
        """
        Args:
            query: (B, HW, C) the layer's input BEV queries.
            query_pos: (1 or B, HW, C) positional embedding.
            ref_2d: (HW, 2) normalised cell locations (u along columns, v along rows).
            bev_hw: (bev_h, bev_w).
            initial: (B, HW, C) the encoder's initial BEV queries (before its first layer).
            prev_bev: (B, HW, C) previous BEV aligned to the current grid, or None.
            has_prev: (B,) bool, which samples' prev_bev is real (None: all of them).
        Returns:
            (B, HW, C) query + attention output.
        """
        batch, num_queries, channels = query.shape
        bev_h, bev_w = bev_hw
        heads, frames, points = self.num_heads, self.num_frames, self.num_points
        prev_slot, current_slot = self.slots(query, initial, prev_bev, has_prev)
        value = self.value_proj(torch.cat([prev_slot, current_slot], dim=1))
        value = value.view(batch, frames * num_queries, heads, channels // heads)
        offset_input = torch.cat([query + query_pos, prev_slot], dim=-1)
        logits = self.attention_weights(offset_input).view(batch, num_queries, heads, frames,
                                                           points)
        if self.mode == 'published':  # a softmax per slot, then the slots' mean
            weights = logits.softmax(-1) / frames
        else:
            weights = logits.flatten(3).softmax(-1).view(batch, num_queries, heads, frames,
                                                         points)
        with torch.autocast(query.device.type, enabled=False):  # sampling locations in fp32
            offsets = self.sampling_offsets(offset_input.float()).view(
                batch, num_queries, heads, frames, points, 2)
            normaliser = offsets.new_tensor([bev_w, bev_h])
            locations = ref_2d.float().view(1, num_queries, 1, 1, 1, 2) + offsets / normaliser
        shapes = [(bev_h, bev_w)] * frames
        out = multi_scale_deformable_attn(value, shapes, locations, weights)
        return query + self.dropout(self.output_proj(out))
