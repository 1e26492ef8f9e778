# OccNet-style cascade: the tiny baseline's encoder (ResNet-50 + 1-level FPN, BEV 200x200,
# 3 layers, queue 3, 960x540) with a cascade voxel decoder instead of the per-cell head. As in
# OccNet the stages keep the BEV's 200x200 grid and refine height: BEV queries lifted to
# 200x200x4 voxel queries, then 200x200x8 and 200x200x16 (a per-pillar channel-to-height
# Linear between stages), each stage with deformable cross-attention from the voxel centres to
# the cameras that see them; the baseline's sigmoid focal loss.
_base_ = ['./bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py']

embed_dims = 256
bev_h = bev_w = 200

model = dict(
    occ_head=dict(
        _delete_=True,  # another head type: none of the baseline head's arguments apply
        type='CascadeVoxelDecoder', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
        stage_shapes=((200, 200, 4), (200, 200, 8), (200, 200, 16)), stage_dims=(128, 64, 32),
        num_heads=4, num_points=4, num_levels=1,
        loss=dict(type='OccupiedFocalLoss', alpha=0.25, gamma=2.0, loss_weight=1.0,
                  free_threshold=0.25, prior_prob=0.01)),
)
