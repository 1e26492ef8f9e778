# fixed420.py with 48 depth bins of 1 m from 1 to 49 m (the demo: 24 bins of 2 m), in the
# lift, the depth-aware weights and the depth loss alike.
_base_ = ['./fixed420.py']
depth_range = (1.0, 49.0, 1.0)
model = dict(bev_encoder=dict(
    view_transform=dict(depth_range=depth_range, depth_net=dict(num_bins=48)),
    loss_depth=dict(depth_range=depth_range)))
