# fixed420.py with the published depth net's 3 residual blocks (the demo: 2).
_base_ = ['./fixed420.py']
model = dict(bev_encoder=dict(view_transform=dict(depth_net=dict(num_blocks=3))))
