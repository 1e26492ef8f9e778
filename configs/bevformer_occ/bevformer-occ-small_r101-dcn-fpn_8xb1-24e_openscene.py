# BEVFormer-Occ small: ResNet-101 with modulated deformable convolutions in stages 3-4 (last
# stage out) + 1-level FPN, BEV 200x200, 3 encoder layers, the BEVFormer-Occ head
# (channel-to-height + two Conv3d), 960x540 inputs, the baseline's sigmoid focal loss (as tiny),
# 24 epochs on 8 GPUs x 1 sample.
_base_ = ['./bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py']

embed_dims = 256
bev_h = bev_w = 200

model = dict(
    img_backbone=dict(depth=101, dcn_stages=(False, False, True, True)),
    occ_head=dict(
        _delete_=True,  # another head type: none of the baseline head's arguments apply
        type='BEVFormerOccHead', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
        voxel_dims=32, num_convs=2,
        loss=dict(type='OccupiedFocalLoss', alpha=0.25, gamma=2.0, loss_weight=1.0,
                  free_threshold=0.25, prior_prob=0.01)),
)
