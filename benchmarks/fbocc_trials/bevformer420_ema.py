# bevformer420.py with ema.py's moving average of the weights (momentum 0.02).
_base_ = ['./bevformer420.py']
custom_hooks = _base_.custom_hooks + [
    dict(type='EMAHook', momentum=0.02, update_buffers=False)]
