# fixed420.py without Lovasz-softmax: the BEVFormer demo's weighted cross-entropy alone.
_base_ = ['./fixed420.py']
model = dict(occ_head=dict(loss=[
    dict(type='OccCrossEntropyLoss', class_weight={{_base_.class_weight}})]))
