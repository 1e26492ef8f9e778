# fixed420.py with the Lovasz weight eased from 1.0 to 0.1 along a half cosine
# (lovasz_variants.LovaszWarmDownHook; run with benchmarks/fbocc_trials on PYTHONPATH).
_base_ = ['./fixed420.py']
custom_imports = dict(imports=['lovasz_variants'], allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [dict(type='LovaszWarmDownHook', final=0.1)]
