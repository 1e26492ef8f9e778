# bevformer420.py starting from the depth-pretrained image backbone and neck
# (pretrained_image.py's start).
_base_ = ['./bevformer420.py']
load_from = 'work_dirs/pretrain/pre_img.pth'
allow_partial_checkpoint = True
