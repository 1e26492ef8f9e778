# BEVFormer-Occ base: ResNet-101-DCN (stages 2-4 out) + FPN with 4 levels, BEV 200x200, 4
# encoder layers over 4 feature levels, the BEVFormer-Occ head, full-resolution 1920x1088
# inputs (1080 padded to a multiple of 32), focal + Lovasz-softmax losses, 24 epochs on
# 8 GPUs x 1 sample. Lovasz-softmax needs a free logit, so this config keeps occnet's focal
# loss with free as a twelfth class (OccFocalLoss) instead of the baseline's.
_base_ = ['./bevformer-occ-small_r101-dcn-fpn_8xb1-24e_openscene.py']

embed_dims = 256

model = dict(
    img_backbone=dict(out_indices=(1, 2, 3)),
    img_neck=dict(in_channels=[512, 1024, 2048], out_channels=embed_dims, num_outs=4),
    bev_encoder=dict(num_layers=4, num_levels=4),
    occ_head=dict(loss=[dict(type='OccFocalLoss', loss_weight=1.0),
                        dict(type='LovaszSoftmaxLoss', loss_weight=1.0)]),
)

full_resolution = [
    dict(type='LoadMultiViewImages'),
    dict(type='LoadOccupancyLabel'),
    dict(type='PackOccInputs'),
]
train_pipeline = [
    dict(type='LoadMultiViewImages'),
    dict(type='PhotoMetricDistortionMultiViewImages'),
    dict(type='GridMaskMultiViewImages', prob=0.7),
    dict(type='LoadOccupancyLabel'),
    dict(type='PackOccInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=full_resolution))
test_dataloader = val_dataloader
