# CPU demo of the FlashOcc family on the synthetic OpenScene-format data: forward projection
# (LSS) with a camera-aware depth net supervised by the synthetic LiDAR, a 2D ResNet-FPN on
# the BEV and a channel-to-height head; no temporal fusion. A hybrid: FlashOcc's M0/M1 lift
# with a plain 1x1 depth net and no depth loss; its camera-aware net with LiDAR depth loss
# (weight 0.05, as here) comes from its BEVDepth-style variants (docs/model_zoo.md). The
# image side, the BEV size (100x100, 1 m cells lifted to the 0.5 m grid by the head), the
# schedule and the loss are the BEVFormer demo's
# (configs/bevformer_occ/bevformer-occ-demo_r18-fpn_1xb1-3e_...), so the two compare like for
# like. Depth bins are 2 m from 1 to 49 m (24 bins; the full scale uses
# 0.5 m from 1 to 45 m).
_base_ = ['../bevformer_occ/bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py']

embed_dims = 64
context_dims = 64
bev_h = bev_w = 100
depth_range = (1.0, 49.0, 2.0)
feat_stride = 8  # ResNet-18's stride-8 stage, one FPN level
use_camera_mask = True
class_frequencies = {{_base_.class_frequencies}}
class_weight = {{_base_.class_weight}}

model = dict(
    bev_encoder=dict(
        _delete_=True,  # a different encoder, not a change of BEVFormer's arguments
        type='LSSBEVEncoder',
        view_transform=dict(
            type='LSSViewTransformer', bev_h=bev_h, bev_w=bev_w, depth_range=depth_range,
            depth_net=dict(type='CameraAwareDepthNet', in_channels=embed_dims,
                           mid_channels=embed_dims, context_channels=context_dims,
                           num_bins=24)),
        bev_backbone=dict(type='BEVResNetFPN', in_channels=context_dims,
                          stage_channels=(64, 128), out_channels=embed_dims),
        loss_depth=dict(type='DepthBinLoss', depth_range=depth_range, loss_weight=0.05)),
    occ_head=dict(
        _delete_=True,  # FlashOcc's head has other arguments than BEVOccHead
        type='ChannelToHeightHead', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
        hidden_dims=embed_dims, class_frequencies=class_frequencies,
        use_camera_mask=use_camera_mask,
        loss=dict(type='OccCrossEntropyLoss', class_weight=class_weight)),
)

# the depth targets are also built at validation and test, where the metric reports the
# depth net's AbsRel and delta < 1.25 against the LiDAR (logged to TensorBoard)
pipeline = [
    dict(type='LoadMultiViewImages'),
    dict(type='ResizeMultiViewImages', scale=0.8),  # 320x180 -> 256x144
    dict(type='LoadOccupancyLabel'),
    dict(type='LoadPoints'),
    dict(type='DepthMapsFromPoints', stride=feat_stride, min_depth=depth_range[0],
         max_depth=depth_range[1]),
    dict(type='PackOccInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader
