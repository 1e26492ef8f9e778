# bevformer420.py starting from the image backbone and neck of the joint depth-semantic
# pretraining (depth_semantic_pretrain.py, then checkpoint_parts.py keep ... img_backbone.
# img_neck.).
_base_ = ['./bevformer420.py']
load_from = 'work_dirs/pretrain_sem/pre_img.pth'
allow_partial_checkpoint = True
