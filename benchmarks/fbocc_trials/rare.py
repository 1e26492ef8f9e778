# fixed420.py with Lovasz over the 6 rare object classes only (czone_sign to barrier: no
# vehicle, background or free row); run with benchmarks/fbocc_trials on PYTHONPATH.
_base_ = ['./fixed420.py']
custom_imports = dict(imports=['lovasz_variants'], allow_failed_imports=False)
model = dict(occ_head=dict(loss=[
    dict(type='OccCrossEntropyLoss', class_weight={{_base_.class_weight}}),
    dict(type='LovaszSubsetLoss', subset=(4, 5, 6, 7, 8, 9))]))
