# The CVPR 2023 Occ3D challenge's BEVFormer baseline "bevformer_base_occ" (published val mIoU
# 23.67, Occ3D protocol): ResNet-101 with modulated deformable convolutions in stages 3-4
# (stages 2-4 out, frozen stem and stage 1, frozen BatchNorm) + FPN with 4 levels, BEV 200x200
# of 0.4 m cells, 4 encoder layers with temporal self-attention and the CAN-bus MLP, 8 pillar
# anchors and 8 points over the 4 levels in the spatial cross-attention, FFN 512, the Conv3d
# head (16 heights, two Conv3d of 32 channels, Linear-Softplus-Linear predictor), softmax
# cross-entropy over the 18 labels on every voxel (the baseline's use_mask=False), queue of 4,
# full-resolution 1600x900 inputs, 24 epochs on 8 GPUs x 1 sample. Deviations from the
# published config: docs/model_zoo.md, "Occ3D-nuScenes".
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/occ3d_nuscenes.py',
    '../_base_/schedules/cosine_24e.py',
]

embed_dims = 256
bev_h = bev_w = 200

model = dict(
    type='BEVFormerOcc',
    dataset={{_base_.dataset_name}},  # handed to the encoder, head and loss
    data_preprocessor=dict(type='OccDataPreprocessor', pad_size_divisor=32),  # 900 -> 928
    img_backbone=dict(type='TorchvisionResNet', depth=101, out_indices=(1, 2, 3),
                      frozen_stages=1, norm_eval=True, weights='IMAGENET1K_V1',
                      dcn_stages=(False, False, True, True)),
    img_neck=dict(type='FPN', in_channels=[512, 1024, 2048], out_channels=embed_dims,
                  num_outs=4),
    bev_encoder=dict(type='BEVFormerEncoder', bev_h=bev_h, bev_w=bev_w, embed_dims=embed_dims,
                     num_layers=4, num_heads=8, num_levels=4, num_points_in_pillar=8,
                     temporal_points=4, spatial_points=8, ffn_dims=512, dropout=0.1,
                     use_can_bus=True, tsa_mode='published', offset_init_scale=1.0),
    occ_head=dict(type='BEVFormerOccHead', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
                  voxel_dims=32, num_convs=2, use_camera_mask=False,
                  loss=dict(type='OccCrossEntropyLoss', loss_weight=1.0)),
    video_test_mode=True,
)

# every input has the same size, so cuDNN's per-shape algorithm search runs once
env_cfg = dict(cudnn_benchmark=True)
