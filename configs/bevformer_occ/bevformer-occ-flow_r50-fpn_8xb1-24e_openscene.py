# The tiny baseline with a flow head: per voxel (vx, vy) in m/s, L1 loss on the occupied
# foreground voxels, trained on the v1.0 flow labels (LoadOccupancyLabel with_flow=True).
# Predictions carry `flow` next to `semantics` (contract 4).
_base_ = ['./bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py']

embed_dims = 256
bev_h = bev_w = 200

model = dict(
    flow_head=dict(type='FlowHead', in_channels=embed_dims, bev_h=bev_h, bev_w=bev_w,
                   hidden_dims=32, loss=dict(type='FlowL1Loss', loss_weight=0.5)))

train_pipeline = [
    dict(type='LoadMultiViewImages', decode_scale=0.5),
    dict(type='PhotoMetricDistortionMultiViewImages'),
    dict(type='GridMaskMultiViewImages', prob=0.7),
    dict(type='LoadOccupancyLabel', with_flow=True),
    dict(type='PackOccInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
