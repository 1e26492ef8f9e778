"""Initialisation shared by the deformable attention modules."""
import math

import torch
import torch.nn as nn


def init_deformable_offsets(sampling_offsets, num_heads, num_groups, num_points, scale=1.0):
    """Zero weights and a bias that spreads each head's points along its own direction.

    Head h looks along angle 2*pi*h/num_heads; point p starts (p + 1) * scale grid cells
    away, so before training every head covers a different ray around the reference point.
    The bias is laid out (num_heads, num_groups, num_points, 2) where groups are levels
    (or frames) that share the pattern.
    """
    nn.init.zeros_(sampling_offsets.weight)
    angles = torch.arange(num_heads, dtype=torch.float32) * (2.0 * math.pi / num_heads)
    directions = torch.stack([angles.cos(), angles.sin()], dim=-1)
    directions = directions / directions.abs().max(-1, keepdim=True).values
    steps = torch.arange(1, num_points + 1, dtype=torch.float32).view(1, 1, num_points, 1) * scale
    bias = directions.view(num_heads, 1, 1, 2).repeat(1, num_groups, num_points, 1) * steps
    with torch.no_grad():
        sampling_offsets.bias.copy_(bias.flatten())


def init_attention_projections(attention_weights, value_proj, output_proj):
    """Uniform attention at start and Xavier value/output projections."""
    nn.init.zeros_(attention_weights.weight)
    nn.init.zeros_(attention_weights.bias)
    for proj in (value_proj, output_proj):
        nn.init.xavier_uniform_(proj.weight)
        nn.init.zeros_(proj.bias)
