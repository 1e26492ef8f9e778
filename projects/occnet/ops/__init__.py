"""Custom operators: multi-scale deformable attention and its backends, voxel pooling."""
from occnet.ops.multi_scale_deformable_attn import (BACKENDS, multi_scale_deformable_attn,
                                                    multi_scale_deformable_attn_pytorch,
                                                    resolve_backend, set_msda_backend)
from occnet.ops.voxel_pooling import (PoolingPlan, cached_pooling_plan, pooling_plan,
                                      voxel_pool, voxel_pool_reference)

__all__ = ['BACKENDS', 'multi_scale_deformable_attn', 'multi_scale_deformable_attn_pytorch',
           'resolve_backend', 'set_msda_backend', 'PoolingPlan', 'cached_pooling_plan',
           'pooling_plan', 'voxel_pool', 'voxel_pool_reference']
