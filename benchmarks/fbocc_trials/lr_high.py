# fixed420.py with the peak learning rate at 4.5e-3 (the demo: 3e-3).
_base_ = ['./fixed420.py']
optim_wrapper = dict(optimizer=dict(lr=4.5e-3))
