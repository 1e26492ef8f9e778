# FlashOcc on Occ3D-nuScenes, as its OpenScene config (configs/flashocc/..._openscene.py) on
# the Occ3D grid, labels and 6 cameras: ResNet-50 stages 3-4 merged by an FPN to stride 16,
# LSS into a 200x200 BEV of 0.4 m cells with 88 depth bins of 0.5 m from 1 to 45 m (FlashOcc's
# grid_config), 64 lifted channels, a 3-stage BEV ResNet-FPN (128, 256, 512) to 256 channels,
# the channel-to-height head (3x3 conv, Linear 512, Linear to 16 heights x 18 labels), softmax
# cross-entropy on camera-visible voxels (FlashOcc's use_mask=True), FlashOcc's random BEV
# flips in x and y, single frames. Its target is FlashOcc M1 (flashocc-r50.py, val mIoU
# 32.08). FlashOcc feeds 704x256 crops of the images resized to 704x396; occnet has no crop
# transform, so the network sees the whole 704x396 image (the same pixel scale, 1.6x the
# pixels after padding to 704x416). Deviations: docs/model_zoo.md, "Occ3D-nuScenes".
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/occ3d_nuscenes.py',
    '../_base_/schedules/cosine_24e.py',
]

embed_dims = 256
context_dims = 64  # FlashOcc's numC_Trans
bev_h = bev_w = 200
depth_range = (1.0, 45.0, 0.5)  # metres: first bin edge, last bin edge, bin size
feat_stride = 16
input_size = (704, 396)  # (W, H): 1600x900 scaled by 0.44, FlashOcc's resize before its crop
queue_length = 1

model = dict(
    type='BEVFormerOcc',
    dataset={{_base_.dataset_name}},  # handed to the encoder, head and loss
    data_preprocessor=dict(type='OccDataPreprocessor', pad_size_divisor=32),
    img_backbone=dict(type='TorchvisionResNet', depth=50, out_indices=(2, 3), frozen_stages=1,
                      norm_eval=True, weights='IMAGENET1K_V1'),
    # FlashOcc's CustomFPN out_ids=[0]: stride 32 only feeds the merge into stride 16
    img_neck=dict(type='FPN', in_channels=[1024, 2048], out_channels=embed_dims, num_outs=2,
                  out_ids=(0,)),
    bev_encoder=dict(
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
        type='ChannelToHeightHead', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
        hidden_dims=256, use_camera_mask=True, loss=dict(type='OccCrossEntropyLoss')),
    video_test_mode=False,
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
    dict(type='LoadOcc3DLabel', dataset={{_base_.dataset_name}}),
    dict(type='LoadPoints'),
    dict(type='RandomFlipBEV', flip_x_ratio=0.5, flip_y_ratio=0.5),  # FlashOcc's BEV flips
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, queue_length=queue_length))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
