"""Custom operators: multi-scale deformable attention."""
from occnet.ops.multi_scale_deformable_attn import (multi_scale_deformable_attn,
                                                    multi_scale_deformable_attn_pytorch)

__all__ = ['multi_scale_deformable_attn', 'multi_scale_deformable_attn_pytorch']
