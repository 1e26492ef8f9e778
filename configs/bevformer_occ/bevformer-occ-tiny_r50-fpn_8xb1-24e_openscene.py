# The published OpenScene baseline "bev_tiny_occ_r50_nuplan": ResNet-50 (last stage) + 1-level
# FPN, BEV 200x200, 3 encoder layers with BEVFormer's temporal self-attention and CAN-bus MLP,
# queue 3, 960x540 inputs, the baseline's sigmoid focal loss (free voxels negatives of every
# class, normalised by the occupied voxels, free below 0.25 at prediction), 24 epochs on 8 GPUs
# with 1 sample each (shared/OPENSCENE_FORMAT.md, last section).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/openscene_occ.py',
    '../_base_/schedules/cosine_24e.py',
]

embed_dims = 256
bev_h = bev_w = 200

model = dict(
    type='BEVFormerOcc',
    dataset={{_base_.dataset_name}},  # handed to the encoder, heads and losses
    data_preprocessor=dict(type='OccDataPreprocessor', pad_size_divisor=32),
    img_backbone=dict(type='TorchvisionResNet', depth=50, out_indices=(3,), frozen_stages=1,
                      norm_eval=True, weights='IMAGENET1K_V1'),
    img_neck=dict(type='FPN', in_channels=[2048], out_channels=embed_dims, num_outs=1),
    bev_encoder=dict(type='BEVFormerEncoder', bev_h=bev_h, bev_w=bev_w, embed_dims=embed_dims,
                     num_layers=3, num_heads=8, num_levels=1, num_points_in_pillar=4,
                     temporal_points=4, spatial_points=8, ffn_dims=512, dropout=0.1,
                     use_can_bus=True, tsa_mode='published', offset_init_scale=1.0),
    occ_head=dict(type='BEVOccHead', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
                  hidden_dims=128, classifier='openscene', num_fcs=2,
                  loss=dict(type='OccupiedFocalLoss', alpha=0.25, gamma=2.0, loss_weight=1.0,
                            free_threshold=0.25, prior_prob=0.01)),
    video_test_mode=True,
)

# every input has the same size (960x540 here, 1920x1080 in the base config), so cuDNN's
# per-shape algorithm search runs once and the fastest convolutions serve the whole run
env_cfg = dict(cudnn_benchmark=True)
