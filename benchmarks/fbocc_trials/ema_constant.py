# ema.py with FB-OCC's schedule: the warm-up, then a constant learning rate (no cosine decay);
# the moving average of the weights does the settling.
_base_ = ['./ema.py']
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50)]
