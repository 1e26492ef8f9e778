"""Mixed precision for training on any device: `tools/train.py --amp bf16|fp16`."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from occnet.engine.nonfinite_loss import NonFiniteGuardMixin
from occnet.registry import OPTIM_WRAPPERS

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(NonFiniteGuardMixin, OptimWrapper):
    """OptimWrapper whose forward passes run under `torch.autocast` in `dtype` on the
    model's device (CPU or CUDA). bf16 keeps fp32's exponent range, so no loss scaling is
    needed; for fp16 on CUDA use mmengine's AmpOptimWrapper, which scales the loss. Guards
    against non-finite losses like every occnet wrapper (NonFiniteGuardMixin).

    Args:
        dtype: 'bfloat16' (or 'float16' where the caller handles scaling).
        **kwargs: OptimWrapper's (optimizer, clip_grad, accumulative_counts).
    """

    def __init__(self, dtype='bfloat16', **kwargs):
        super().__init__(**kwargs)
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype

    @contextmanager
    def optim_context(self, model):
        device_type = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device_type, dtype=self.dtype):
            yield


def configure_amp(cfg, amp, device_type=None):
    """Switch a config's training on `device_type` (default: CUDA when available) to mixed
    precision: 'bf16' autocast on CPU or CUDA,
    'fp16' autocast with dynamic loss scaling on CUDA; None leaves it in fp32. Validation
    and testing stay fp32, so the reported metrics do not depend on the training precision.
    Geometry (anchor projection, sampling locations) is fp32 under autocast either way."""
    if amp is None:
        return cfg
    if amp not in AMP_DTYPES:
        raise ValueError(f'--amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}')
    wrapper = {key: value for key, value in dict(cfg.optim_wrapper).items()
               if key not in ('type', 'dtype', 'loss_scale')}
    device_type = device_type or ('cuda' if torch.cuda.is_available() else 'cpu')
    if amp == 'bf16':
        wrapper.update(type='AutocastOptimWrapper', dtype='bfloat16')
    else:
        if device_type != 'cuda':
            raise ValueError('--amp fp16 needs CUDA (fp16 gradients need loss scaling, which '
                             'mmengine does on GPUs only); use --amp bf16 on CPU')
        wrapper.update(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
    cfg.optim_wrapper = wrapper
    return cfg


def amp_mode(cfg):
    """The mixed precision configure_amp gave cfg's training: 'bf16', 'fp16' or None (fp32),
    read from cfg.optim_wrapper.type."""
    wrapper = dict(cfg.get('optim_wrapper') or {})
    if wrapper.get('type') == 'AmpOptimWrapper':
        return 'fp16'
    if wrapper.get('type') == 'AutocastOptimWrapper':
        dtype = getattr(torch, str(wrapper.get('dtype', 'bfloat16')).replace('torch.', ''))
        return next(name for name, value in AMP_DTYPES.items() if value == dtype)
    return None
