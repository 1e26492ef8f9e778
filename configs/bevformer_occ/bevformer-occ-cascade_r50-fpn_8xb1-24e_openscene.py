# OccNet-style cascade: the tiny baseline's encoder (ResNet-50 + 1-level FPN, BEV 200x200,
# 3 layers, queue 3, 960x540) with a cascade voxel decoder instead of the per-cell head: BEV
# queries lifted to 50x50x4 voxel queries, then 100x100x8 and 200x200x16, each stage with
# deformable cross-attention from the voxel centres to the cameras that see them.
_base_ = ['./bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py']

embed_dims = 256
bev_h = bev_w = 200

model = dict(
    occ_head=dict(
        _delete_=True,  # another head type: none of the baseline head's arguments apply
        type='CascadeVoxelDecoder', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
        stage_shapes=((50, 50, 4), (100, 100, 8), (200, 200, 16)), stage_dims=(128, 64, 32),
        num_heads=4, num_points=4, num_levels=1,
        loss=dict(type='OccFocalLoss', loss_weight=1.0)),
)
