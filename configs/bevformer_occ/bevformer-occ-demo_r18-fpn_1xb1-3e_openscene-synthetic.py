# CPU demo on the synthetic OpenScene-format data (`make demo`): the BEVFormer-occupancy family
# shrunk to train in about 9 minutes on 2 CPU cores. ResNet-18 (stride-8 stage) + 1-level FPN,
# 100x100 BEV (1 m cells, lifted to the 0.5 m grid by the head), 1 encoder layer with temporal
# self-attention and spatial cross-attention, 256x144 inputs, 3 epochs from scratch.
# Trained on single frames (queue 1) and tested frame by frame: a queue of 2 costs 30% more per
# iteration and gave similar held-out numbers (one run each, docs/benchmarks.md). The loss
# counts only voxels a camera sees (use_camera_mask): on the synthetic streets 63% of the voxels
# are hidden (inside and behind buildings), and fitting them too left the objects at a third of
# the foreground mIoU after 3 epochs (docs/benchmarks.md).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/openscene_occ.py',
    '../_base_/schedules/cosine_24e.py',
]

data_root = 'data/openscene-synthetic/'
embed_dims = 64
bev_h = bev_w = 100
queue_length = 1
max_epochs = 3
use_camera_mask = True
# BEVFormer's initial point spread is (p + 1) feature cells for point p; the demo's points
# start a quarter of that from their anchors (within 1.5 cells of the 32x20 feature map)
offset_init_scale = 0.25
# frequencies of the camera-visible voxels of the synthetic training logs
# (tools/dataset_stats.py measures them for any infos file); the loss weights are
# (f_free / f_class) ** (1 / 3)
class_frequencies = [3.70e-3, 0, 0, 0, 1.46e-4, 1.54e-4, 2.20e-4, 5.07e-4, 1.53e-4, 3.26e-4,
                     7.70e-2, 0.918]
class_weight = [6.3, 1.0, 1.0, 1.0, 18.5, 18.1, 16.1, 12.2, 18.2, 14.1, 2.3, 1.0]

model = dict(
    type='BEVFormerOcc',
    dataset={{_base_.dataset_name}},  # handed to the encoder, heads and losses
    data_preprocessor=dict(type='OccDataPreprocessor', pad_size_divisor=32),
    img_backbone=dict(type='TorchvisionResNet', depth=18, out_indices=(1,), frozen_stages=-1,
                      norm_eval=False),
    img_neck=dict(type='FPN', in_channels=[128], out_channels=embed_dims, num_outs=1),
    bev_encoder=dict(type='BEVFormerEncoder', bev_h=bev_h, bev_w=bev_w, embed_dims=embed_dims,
                     num_layers=1, num_heads=4, num_levels=1, temporal_points=4,
                     # 6 anchors from 0.25 m below to 2.25 m above the road (lidar z = -2):
                     # all objects but trucks are lower than 2.1 m, and an anchor at the
                     # ground line tells where an object stands; the head infers the height
                     # of buildings and trees from their lower part
                     num_points_in_pillar=6, spatial_points=6, pillar_z_range=(-2.5, 0.5),
                     ffn_dims=128, dropout=0.0, use_can_bus=True, tsa_mode='published',
                     offset_init_scale=offset_init_scale),
    occ_head=dict(type='BEVOccHead', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
                  hidden_dims=16, classifier='openscene', bev_convs=2,
                  class_frequencies=class_frequencies, use_camera_mask=use_camera_mask,
                  loss=dict(type='OccCrossEntropyLoss', class_weight=class_weight)),
    video_test_mode=False,
)

pipeline = [
    dict(type='LoadMultiViewImages'),
    dict(type='ResizeMultiViewImages', scale=0.8),  # 320x180 -> 256x144
    dict(type='LoadOccupancyLabel'),
    dict(type='PackOccInputs'),
]
train_dataloader = dict(
    num_workers=1,
    pin_memory=False,
    dataset=dict(data_root=data_root, ann_file='openscene_mini_train.pkl',
                 pipeline=pipeline, queue_length=queue_length))
val_dataloader = dict(
    num_workers=1,
    pin_memory=False,
    dataset=dict(data_root=data_root, ann_file='openscene_mini_val.pkl',
                 pipeline=pipeline))
test_dataloader = val_dataloader

# trained from scratch, so the backbone learns at the full rate
optim_wrapper = dict(optimizer=dict(lr=3e-3),
                     paramwise_cfg=dict(custom_keys={'img_backbone': dict(lr_mult=1.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=True, begin=0,
         end=max_epochs, T_max=max_epochs, convert_to_iter_based=True),
]
# `make demo` tests on the held-out logs after training (tools/test.py); validate during
# training too with --cfg-options train_cfg.val_begin=1 (mmengine validates the last epoch
# whatever val_interval says; val_begin past it keeps the demo from evaluating twice)
train_cfg = dict(max_epochs=max_epochs, val_begin=max_epochs + 1, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1))
