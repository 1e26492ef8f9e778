# fixed420.py with an exponential moving average of the weights (mmengine's EMAHook), as
# FB-OCC trains (MEGVIIEMAHook). Momentum 0.02: a window of about 50 of the 420 iterations.
# The checkpoint's state_dict holds the averaged weights, its ema_state_dict the raw ones
# (checkpoint_parts.py raw writes those to a checkpoint of their own).
_base_ = ['./fixed420.py']
custom_hooks = _base_.custom_hooks + [
    dict(type='EMAHook', momentum=0.02, update_buffers=False)]
