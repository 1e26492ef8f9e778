# fixed420.py starting from the depth-pretrained image backbone and neck only
# (checkpoint_parts.py keep ... img_backbone. img_neck.); the depth net starts from scratch.
_base_ = ['./fixed420.py']
load_from = 'work_dirs/pretrain/pre_img.pth'
allow_partial_checkpoint = True
