# bevformer420.py with ema.py's moving average of the weights (momentum 0.02).
_base_ = ['./bevformer420.py']
custom_hooks = [dict(type='PlainCheckpointHook'),
                dict(type='NonFiniteLossHook', policy='stop'),
                dict(type='OccupancyVisualizationHook', max_frames=2),
                dict(type='EMAHook', momentum=0.02, update_buffers=False)]
