# The forward-backward model (FB-OCC style) on OpenScene, built on the BEVFormer tiny baseline
# (configs/bevformer_occ/...tiny...): ResNet-50 stages 3-4 and an FPN (strides 16 and 32);
# forward projection by a LiDAR-supervised camera-aware depth net on the stride-16 level,
# 88 depth bins of 0.5 m from 1 to 45 m, into the 200x200 BEV of 0.5 m cells; that BEV
# initialises the queries of FB-OCC's one backward layer (temporal self-attention with the
# previous BEV and the CAN-bus MLP as BEVFormer, then depth-aware spatial cross-attention: 4
# pillar anchors, 8 points, both FPN levels, the BEV positional embedding on the queries;
# FFN 4x, no dropout), and is added back to its output. Head, loss,
# optimiser, queue and schedule are the tiny baseline's. Deviations from FB-OCC (its 3D
# voxel lift, 16-frame history fusion, 3D ResNet and head): docs/model_zoo.md.
_base_ = ['../bevformer_occ/bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py']

embed_dims = 256
bev_h = bev_w = 200
depth_range = (1.0, 45.0, 0.5)
feat_stride = 16

model = dict(
    img_backbone=dict(out_indices=(2, 3)),
    img_neck=dict(in_channels=[1024, 2048], out_channels=embed_dims, num_outs=2),
    bev_encoder=dict(
        type='FBOccEncoder', num_layers=1, num_levels=2, num_points_in_pillar=4,
        spatial_points=8, spatial_query_pos=True, ffn_dims=4 * embed_dims, dropout=0.0,
        view_transform=dict(
            type='LSSViewTransformer', bev_h=bev_h, bev_w=bev_w, depth_range=depth_range,
            feat_level=0,
            # a cell's lifted sum / (1 + its probability mass): the forward BEV, added to
            # the queries and to the output, keeps the queries' scale near the cameras
            # (an occnet deviation, docs/model_zoo.md)
            pooling='mass_mean',
            depth_net=dict(type='CameraAwareDepthNet', in_channels=embed_dims,
                           mid_channels=embed_dims, context_channels=80, num_bins=88)),
        loss_depth=dict(type='DepthBinLoss', depth_range=depth_range, loss_weight=1.0),
        depth_aware=True),
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
    dict(type='GridMaskMultiViewImages', prob=0.7),
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
