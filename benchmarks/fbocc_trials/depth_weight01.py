# fixed420.py with the LiDAR depth loss at weight 0.1 (the demo: FlashOcc's 0.05).
_base_ = ['./fixed420.py']
model = dict(bev_encoder=dict(loss_depth=dict(loss_weight=0.1)))
