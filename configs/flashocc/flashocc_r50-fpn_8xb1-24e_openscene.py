# FlashOcc (M2-like, with a LiDAR-supervised camera-aware depth net as its BEVDepth-style
# variants) on OpenScene: ResNet-50 stages 3-4 merged by an FPN to stride 16 (as FlashOcc's
# CustomFPN), LSS into a 200x200 BEV of 0.5 m cells with 88 depth bins of 0.5 m from 1 to
# 45 m, a 3-stage BEV ResNet-FPN, the channel-to-height head; single frames (FlashOcc's
# temporal variants fuse BEVs with BEVDet4D, which occnet does not build). Image side,
# optimiser and schedule as the BEVFormer tiny baseline (configs/bevformer_occ/...tiny...),
# the loss is FlashOcc's softmax cross-entropy. Deviations: docs/model_zoo.md.
_base_ = ['../bevformer_occ/bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py']

embed_dims = 256
context_dims = 64  # FlashOcc lifts 64-channel context features (M0: 64, M1/M2: 64)
bev_h = bev_w = 200
depth_range = (1.0, 45.0, 0.5)
feat_stride = 16
queue_length = 1

model = dict(
    img_backbone=dict(out_indices=(2, 3)),
    # FlashOcc's CustomFPN out_ids=[0]: stride 32 only feeds the merge into stride 16
    img_neck=dict(in_channels=[1024, 2048], out_channels=embed_dims, num_outs=2,
                  out_ids=(0,)),
    bev_encoder=dict(
        _delete_=True,
        type='LSSBEVEncoder',
        view_transform=dict(
            type='LSSViewTransformer', bev_h=bev_h, bev_w=bev_w, depth_range=depth_range,
            feat_level=0,
            depth_net=dict(type='CameraAwareDepthNet', in_channels=embed_dims,
                           mid_channels=embed_dims, context_channels=context_dims,
                           num_bins=88)),
        bev_backbone=dict(type='BEVResNetFPN', in_channels=context_dims,
                          stage_channels=(128, 256, 512), out_channels=embed_dims),
        loss_depth=dict(type='DepthBinLoss', depth_range=depth_range, loss_weight=0.05)),
    occ_head=dict(
        _delete_=True,
        type='ChannelToHeightHead', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
        hidden_dims=256,  # FlashOcc: 3x3 conv to 256, Linear 512, Linear to Z x classes
        loss=dict(type='OccCrossEntropyLoss')),
    video_test_mode=False,
)

# LiDAR depth targets at the lifted level's stride, in training and at test (depth metrics)
depth_targets = [
    dict(type='LoadPoints'),
    dict(type='DepthMapsFromPoints', stride=feat_stride, min_depth=depth_range[0],
         max_depth=depth_range[1]),
]
train_pipeline = [
    dict(type='LoadMultiViewImages', decode_scale=0.5),
    dict(type='PhotoMetricDistortionMultiViewImages'),
    dict(type='LoadOccupancyLabel'),
    *depth_targets,
    dict(type='PackOccInputs'),
]
test_pipeline = [
    dict(type='LoadMultiViewImages', decode_scale=0.5),
    dict(type='LoadOccupancyLabel'),
    *depth_targets,
    dict(type='PackOccInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, queue_length=queue_length))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
