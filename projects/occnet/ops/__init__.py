"""Custom operators: multi-scale deformable attention and its backends."""
from occnet.ops.multi_scale_deformable_attn import (BACKENDS, multi_scale_deformable_attn,
                                                    multi_scale_deformable_attn_pytorch,
                                                    resolve_backend, set_msda_backend)

__all__ = ['BACKENDS', 'multi_scale_deformable_attn', 'multi_scale_deformable_attn_pytorch',
           'resolve_backend', 'set_msda_backend']
