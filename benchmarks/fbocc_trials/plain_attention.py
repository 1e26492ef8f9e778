# fixed420.py with plain spatial cross-attention: every depth weight 1, the forward BEV
# still initialising the queries and added back (the demo: depth-aware).
_base_ = ['./fixed420.py']
model = dict(bev_encoder=dict(depth_aware=False))
