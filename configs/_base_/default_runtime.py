# Runtime shared by every occnet config: registry scope, hooks, logging, TensorBoard.
default_scope = 'occnet'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),  # log lines carry the ETA
    param_scheduler=dict(type='ParamSchedulerHook'),
    # atomic writes; old checkpoints are removed only after the new one is on disk
    checkpoint=dict(type='SafeCheckpointHook', interval=1, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

# checkpoints hold only tensors and builtins, so they load with torch.load(weights_only=True);
# a NaN or infinite loss on any process stops training with the iteration, the loss terms and
# the frame tokens (policy='skip' drops such updates instead);
# each validation / test adds renders of its first 2 frames to TensorBoard
custom_hooks = [dict(type='PlainCheckpointHook'),
                dict(type='NonFiniteLossHook', policy='stop'),
                dict(type='OccupancyVisualizationHook', max_frames=2)]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo without CUDA; timeout: seconds a collective may wait for
    # a hung rank before the job fails (a rank that dies or raises ends the job at once)
    dist_cfg=dict(backend='nccl', timeout=1800),
)

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)

# multi-scale deformable attention backend: 'auto' (Triton on CUDA, sparse products on CPU),
# 'triton', 'cpu' or 'pytorch' (the grid_sample reference); see occnet/ops
msda_backend = 'auto'
