# CPU demo on the synthetic Occ3D-nuScenes set (tools/create_synthetic_occ3d.py): the OpenScene
# BEVFormer demo (bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py) on the Occ3D
# layout, so both datasets run the same model: 6 cameras at 320x180 resized to 256x144,
# ResNet-18 (stride-8 stage) + 1-level FPN, a 100x100 BEV of 0.8 m cells (lifted to the 0.4 m
# grid by the head), 1 encoder layer, 18 labels on the ego-frame grid, the loss on
# camera-visible voxels (Occ3D's mask_camera), 3 epochs from scratch, queue 1.
#
#   python tools/create_synthetic_occ3d.py --out-dir data/occ3d-synthetic --num-logs 8 \
#       --frames-per-log 32 --frames-per-scene 16 --image-size 320 180 --val-logs 2
#   python tools/train.py configs/bevformer_occ/<this file>
#
# tools/test.py reports the Occ3D protocol's mIoU as occ/protocol_miou (docs/evaluation.md).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/occ3d_nuscenes.py',
    '../_base_/schedules/cosine_24e.py',
]

data_root = 'data/occ3d-synthetic/'
embed_dims = 64
bev_h = bev_w = 100
queue_length = 1
max_epochs = 3
use_camera_mask = True
offset_init_scale = 0.25  # as the OpenScene demo: points within 1.5 cells of the 32x20 map
# frequencies of the camera-visible voxels of the synthetic training logs (8 logs x 32 frames,
# seed 0, 2 held out; tools/dataset_stats.py --dataset occ3d_nuscenes), labels 0..17; the
# loss weights are (f_free / f_class) ** (1 / 3) as in the OpenScene demo, 1 for the classes
# the synthetic world has no instance of (bus, construction_vehicle, motorcycle, trailer,
# other_flat)
class_frequencies = [2.53e-4, 4.25e-4, 1.34e-4, 0, 4.27e-3, 0, 0, 6.36e-4, 2.02e-4, 0,
                     6.38e-4, 2.48e-2, 0, 8.75e-3, 1.45e-2, 8.58e-3, 8.72e-3, 0.928]
class_weight = [15.4, 13.0, 19.1, 1.0, 6.0, 1.0, 1.0, 11.3, 16.6, 1.0, 11.3, 3.3, 1.0, 4.7,
                4.0, 4.8, 4.7, 1.0]

model = dict(
    type='BEVFormerOcc',
    dataset={{_base_.dataset_name}},  # handed to the encoder, heads and losses
    data_preprocessor=dict(type='OccDataPreprocessor', pad_size_divisor=32),
    img_backbone=dict(type='TorchvisionResNet', depth=18, out_indices=(1,), frozen_stages=-1,
                      norm_eval=False),
    img_neck=dict(type='FPN', in_channels=[128], out_channels=embed_dims, num_outs=1),
    bev_encoder=dict(type='BEVFormerEncoder', bev_h=bev_h, bev_w=bev_w, embed_dims=embed_dims,
                     num_layers=1, num_heads=4, num_levels=1, temporal_points=4,
                     # 6 anchors from 0.5 m below to 2.5 m above the road (ego z = 0), the
                     # OpenScene demo's span about the ground
                     num_points_in_pillar=6, spatial_points=6, pillar_z_range=(-0.5, 2.5),
                     ffn_dims=128, dropout=0.0, use_can_bus=True, tsa_mode='published',
                     offset_init_scale=offset_init_scale),
    occ_head=dict(type='BEVOccHead', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
                  hidden_dims=16, classifier='openscene', bev_convs=2,
                  class_frequencies=class_frequencies, use_camera_mask=use_camera_mask,
                  loss=dict(type='OccCrossEntropyLoss', class_weight=class_weight)),
    video_test_mode=False,
)

pipeline = [
    dict(type='LoadMultiViewImages', dataset={{_base_.dataset_name}}),
    dict(type='ResizeMultiViewImages', scale=0.8),  # 320x180 -> 256x144
    dict(type='LoadOcc3DLabel', dataset={{_base_.dataset_name}}),
    dict(type='PackOccInputs'),
]
train_dataloader = dict(
    num_workers=1,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=pipeline, queue_length=queue_length))
val_dataloader = dict(
    num_workers=1,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=pipeline))
test_dataloader = val_dataloader

# trained from scratch, so the backbone learns at the full rate
optim_wrapper = dict(optimizer=dict(lr=3e-3),
                     paramwise_cfg=dict(custom_keys={'img_backbone': dict(lr_mult=1.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=True, begin=0,
         end=max_epochs, T_max=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_begin=max_epochs + 1, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1))
