# The CPU demo with the BEVFormer-Occ head (channel-to-height, two Conv3d, MLP predictor)
# instead of the OpenScene baseline head; everything else, the schedule included, as the demo.
_base_ = ['./bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py']

model = dict(
    occ_head=dict(
        _delete_=True,  # another head type: none of the baseline head's arguments apply
        type='BEVFormerOccHead', in_channels={{_base_.embed_dims}}, bev_h={{_base_.bev_h}},
        bev_w={{_base_.bev_w}}, voxel_dims=16, num_convs=2,
        class_frequencies={{_base_.class_frequencies}},
        use_camera_mask={{_base_.use_camera_mask}},
        loss=dict(type='OccCrossEntropyLoss', class_weight={{_base_.class_weight}})))
