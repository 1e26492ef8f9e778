# FB-OCC's joint depth-semantic pretraining of the image side: depth_pretrain.py (840
# iterations of the LiDAR depth loss on the separate seed-2 set, occupancy loss at weight 0)
# plus an ImageSemanticHead on the stride-8 neck features, trained on the label of the
# voxel holding each cell's nearest LiDAR return (DepthMapsFromPoints(with_semantics=True)).
# checkpoint_parts.py keep then keeps the backbone, the FPN and, optionally, the depth net.
_base_ = ['./depth_pretrain.py']
pipeline = [dict(t, with_semantics=True) if t['type'] == 'DepthMapsFromPoints' else t
            for t in _base_.pipeline]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = dict(dataset=dict(pipeline=pipeline))
# the occupancy demo's class weights without free's: the same rare classes are rare pixels
model = dict(img_seg_head=dict(type='ImageSemanticHead', in_channels=64, mid_channels=64,
                               class_weight=_base_.class_weight[:11]))
