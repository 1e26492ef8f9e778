# fixed420.py starting from the depth-pretrained image backbone, neck and depth net
# (depth_pretrain.py, then checkpoint_parts.py keep ... img_backbone. img_neck.
# bev_encoder.view_transform.depth_net.); the rest starts from scratch as in the demo.
_base_ = ['./fixed420.py']
load_from = 'work_dirs/pretrain/pre_fb.pth'
allow_partial_checkpoint = True
