# fixed420.py with FB-OCC's semantic scene-class affinity loss (weight 1) added.
_base_ = ['./fixed420.py']
model = dict(occ_head=dict(loss=[
    dict(type='OccCrossEntropyLoss', class_weight={{_base_.class_weight}}),
    dict(type='LovaszSoftmaxLoss'),
    dict(type='SemanticScalLoss', loss_weight=1.0)]))
