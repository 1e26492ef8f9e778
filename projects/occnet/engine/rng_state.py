"""Random-number-generator states in checkpoints, so a resumed run continues the same stream.

Saved as tensors and builtins only (checkpoints load with `weights_only=True`): torch's CPU
generator, every CUDA generator, numpy's global MT19937 state and Python's `random` state.
"""
import random

import numpy as np
import torch


def capture_rng_states():
    """The current generator states as a dict of tensors and builtins."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return dict(
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                   has_gauss=int(has_gauss), cached=float(cached)),
        python=dict(version=version, internal=list(internal), gauss=gauss))


def restore_rng_states(states):
    """Set the generators from `capture_rng_states`' dict (CUDA states only where the
    same number of devices is visible)."""
    torch.set_rng_state(states['torch'])
    cuda = states.get('cuda') or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    state = states['numpy']
    np.random.set_state((state['kind'], state['keys'].numpy().astype(np.uint32), state['pos'],
                         state['has_gauss'], state['cached']))
    python = states['python']
    random.setstate((python['version'], tuple(python['internal']), python['gauss']))
