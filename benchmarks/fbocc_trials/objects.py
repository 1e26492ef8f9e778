# fixed420.py with Lovasz over the 7 object classes only (no free or background row);
# run with benchmarks/fbocc_trials on PYTHONPATH.
_base_ = ['./fixed420.py']
custom_imports = dict(imports=['lovasz_variants'], allow_failed_imports=False)
model = dict(occ_head=dict(loss=[
    dict(type='OccCrossEntropyLoss', class_weight={{_base_.class_weight}}),
    dict(type='LovaszSubsetLoss', subset=(0, 4, 5, 6, 7, 8, 9))]))
