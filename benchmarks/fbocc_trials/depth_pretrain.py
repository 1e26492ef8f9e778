# Depth-only pretraining of the forward-backward demo's image side (backbone, neck, depth net),
# as FB-OCC starts from a depth-pretrained backbone: 840 iterations on a separate synthetic
# set (seed 2, generated as the demo's), the occupancy loss at weight 0 and the LiDAR depth
# loss at 1. checkpoint_parts.py keep then keeps the image side for the `*pretrained*` trials.
_base_ = ['./fixed420.py']
data_root = 'work_dirs/pretrain/data_s2/'
train_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
N = 840
train_cfg = dict(max_iters=N, val_interval=N + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=False, begin=0, end=N, T_max=N),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=N, max_keep_ckpts=1))
model = dict(bev_encoder=dict(loss_depth=dict(loss_weight=1.0)),
             occ_head=dict(loss=[dict(type='OccCrossEntropyLoss', loss_weight=0.0)]))
