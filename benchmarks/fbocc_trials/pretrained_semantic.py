# fixed420.py starting from the image backbone, neck and depth net of FB-OCC's joint
# depth-semantic pretraining (depth_semantic_pretrain.py, then checkpoint_parts.py keep ...
# img_backbone. img_neck. bev_encoder.view_transform.depth_net.; its semantic head is not
# kept); the rest starts from scratch as in the demo.
_base_ = ['./fixed420.py']
load_from = 'work_dirs/pretrain_sem/pre_fb.pth'
allow_partial_checkpoint = True
