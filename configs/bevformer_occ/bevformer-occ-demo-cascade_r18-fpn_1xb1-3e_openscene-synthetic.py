# The CPU demo with a cascade voxel decoder (OccNet style) instead of the baseline head: the
# 100x100 BEV lifted to 100x100x4 voxel queries, then (per-pillar channel-to-height) to
# 100x100x16, each voxel covering 2x2 grid voxels; OccNet keeps the BEV's xy grid and refines
# height. Each stage attends to the camera features; schedule as the demo.
_base_ = ['./bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py']

model = dict(
    occ_head=dict(
        _delete_=True,  # another head type: none of the baseline head's arguments apply
        type='CascadeVoxelDecoder', in_channels={{_base_.embed_dims}}, bev_h={{_base_.bev_h}},
        bev_w={{_base_.bev_w}}, stage_shapes=((100, 100, 4), (100, 100, 16)),
        stage_dims=(32, 16), num_heads=2, num_points=4, num_levels=1,
        offset_init_scale={{_base_.offset_init_scale}},
        class_frequencies={{_base_.class_frequencies}},
        use_camera_mask={{_base_.use_camera_mask}},
        loss=dict(type='OccCrossEntropyLoss', class_weight={{_base_.class_weight}})))
