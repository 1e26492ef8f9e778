# The forward-backward demo for a fixed 420 iterations on benchmarks/depth_vs_bevformer.py's
# seed-0 set (the `data` folder of a `--seed 0 --work-dir work_dirs/dvb/l0` run), the
# demo's warm-up times a cosine over the 420 iterations, training seed 0, no validation.
# Run from the repository root.
_base_ = ['../../configs/fbocc/fbocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py']
data_root = 'work_dirs/dvb/l0/data/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
N = 420
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=N, val_interval=N + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=False, begin=0, end=N, T_max=N),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=N, max_keep_ckpts=1),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
val_dataloader = None
val_cfg = None
val_evaluator = None
