# fixed420.py with FB-OCC's scene-class affinity losses added (MonoScene's semantic and
# geometric terms, weight 1 each, as published): cross-entropy, Lovasz-softmax and both.
_base_ = ['./fixed420.py']
model = dict(occ_head=dict(loss=[
    dict(type='OccCrossEntropyLoss', class_weight={{_base_.class_weight}}),
    dict(type='LovaszSoftmaxLoss'),
    dict(type='SemanticScalLoss', loss_weight=1.0),
    dict(type='GeometryScalLoss', loss_weight=1.0)]))
