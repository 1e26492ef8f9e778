# The forward-backward model (FB-OCC style) on Occ3D-nuScenes, as its OpenScene config
# (configs/fbocc/..._openscene.py) on the Occ3D grid, labels and 6 cameras: ResNet-50 stages
# 3-4 and an FPN (strides 16 and 32); forward projection by a LiDAR-supervised camera-aware
# depth net on the stride-16 level, 88 depth bins of 0.5 m from 1 to 45 m, into the 200x200
# BEV of 0.4 m cells; that BEV initialises the queries of one backward layer (temporal
# self-attention with the previous BEV and the CAN-bus MLP, then depth-aware spatial
# cross-attention: 4 pillar anchors as FB-OCC's 1.6 m slices of the 6.4 m column, 8 points,
# both FPN levels, the BEV positional embedding on the queries; FFN 4C, no dropout) and is
# added back to its output; the BEVFormer tiny baseline's head, queue of 3 and schedule.
# FB-OCC's occupancy losses on camera-visible voxels (focal, semantic and geometric
# scene-class affinity, Lovasz-softmax, each weight 1) and its random BEV flips. Its target
# is FB-OCC's R50 (fbocc-r50-cbgs_depth_16f_16x4_20e.py, 39.1 on val). FB-OCC feeds 704x256
# crops of the images resized to 704x396; occnet has no crop transform, so the network sees
# the whole 704x396 image. Deviations: docs/model_zoo.md, "Occ3D-nuScenes".
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/occ3d_nuscenes.py',
    '../_base_/schedules/cosine_24e.py',
]

embed_dims = 256
bev_h = bev_w = 200
depth_range = (1.0, 45.0, 0.5)  # metres: first bin edge, last bin edge, bin size
feat_stride = 16
input_size = (704, 396)  # (W, H): 1600x900 scaled by 0.44
queue_length = 3  # the tiny baseline's queue, as the OpenScene config
queue_window = 3

model = dict(
    type='BEVFormerOcc',
    dataset={{_base_.dataset_name}},  # handed to the encoder, head and losses
    data_preprocessor=dict(type='OccDataPreprocessor', pad_size_divisor=32),
    img_backbone=dict(type='TorchvisionResNet', depth=50, out_indices=(2, 3), frozen_stages=1,
                      norm_eval=True, weights='IMAGENET1K_V1'),
    img_neck=dict(type='FPN', in_channels=[1024, 2048], out_channels=embed_dims, num_outs=2),
    bev_encoder=dict(
        type='FBOccEncoder', bev_h=bev_h, bev_w=bev_w, embed_dims=embed_dims, num_layers=1,
        num_heads=8, num_levels=2, num_points_in_pillar=4, temporal_points=4,
        spatial_points=8, spatial_query_pos=True, ffn_dims=4 * embed_dims, dropout=0.0,
        use_can_bus=True, tsa_mode='published', offset_init_scale=1.0,
        view_transform=dict(
            type='LSSViewTransformer', bev_h=bev_h, bev_w=bev_w, depth_range=depth_range,
            feat_level=0,
            # a cell's lifted sum / (1 + its probability mass), as the OpenScene config
            # (an occnet deviation, docs/model_zoo.md)
            pooling='mass_mean',
            depth_net=dict(type='CameraAwareDepthNet', in_channels=embed_dims,
                           mid_channels=embed_dims, context_channels=80, num_bins=88)),
        loss_depth=dict(type='DepthBinLoss', depth_range=depth_range, loss_weight=1.0),
        depth_aware=True),
    occ_head=dict(type='BEVOccHead', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
                  hidden_dims=128, classifier='openscene', num_fcs=2, use_camera_mask=True,
                  loss=[dict(type='OccFocalLoss', loss_weight=1.0),
                        dict(type='SemanticScalLoss', loss_weight=1.0),
                        dict(type='GeometryScalLoss', loss_weight=1.0),
                        dict(type='LovaszSoftmaxLoss', loss_weight=1.0)]),
    video_test_mode=True,
)

# LiDAR depth targets at the lifted level's stride, in training and at test (depth metrics):
# LoadPoints reads the frame's LIDAR_TOP sweep (nuScenes .pcd.bin) and moves it into the ego
# grid (lidar_to_grid); without a .pcd.bin reader, see docs/model_zoo.md, "Occ3D-nuScenes".
images = [
    dict(type='LoadMultiViewImages', dataset={{_base_.dataset_name}}, decode_scale=0.5),
    dict(type='ResizeMultiViewImages', size=input_size),  # 800x450 -> 704x396
]
depth_targets = dict(type='DepthMapsFromPoints', stride=feat_stride, min_depth=depth_range[0],
                     max_depth=depth_range[1])
train_pipeline = [
    *images,
    dict(type='PhotoMetricDistortionMultiViewImages'),
    dict(type='GridMaskMultiViewImages', prob=0.7),
    dict(type='LoadOcc3DLabel', dataset={{_base_.dataset_name}}),
    dict(type='LoadPoints'),
    # FB-OCC's BEV flips; one draw for every frame of the queue, cur2prev mirrored with it
    dict(type='RandomFlipBEV', flip_x_ratio=0.5, flip_y_ratio=0.5),
    depth_targets,  # after the flip, which moves the points
    dict(type='PackOccInputs'),
]
test_pipeline = [
    *images,
    dict(type='LoadOcc3DLabel', dataset={{_base_.dataset_name}}),
    dict(type='LoadPoints'),
    depth_targets,
    dict(type='PackOccInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, queue_length=queue_length,
                                     queue_window=queue_window))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# every input has the same size, so cuDNN's per-shape algorithm search runs once
env_cfg = dict(cudnn_benchmark=True)
