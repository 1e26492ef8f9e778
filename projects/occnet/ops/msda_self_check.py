"""The Triton backends check themselves before their first use on a device.

The first call of 'triton' or 'triton_csr' (also when 'auto' picks one) for a device, dtype
and kernel shape (levels, points, channels) first runs a tiny case of that shape, forward and
backward, against the PyTorch reference computed in float64. On a compile error, a launch
error or a mismatch it warns once, naming the error and the `msda_backend` override, and
that kind of call falls back to the PyTorch reference. A kernel that compiles and agrees is
used from then on.

When it runs (environment variable OCCNET_MSDA_SELF_CHECK):
    'auto' (default) on CUDA devices; '1' on every device (tests, TRITON_INTERPRET=1);
    '0' never.
"""
import os
import warnings

import torch

SELF_CHECKED = ('triton', 'triton_csr')
FALLBACK = 'pytorch'
TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-3, torch.float16: 2e-2,
             torch.bfloat16: 2e-2}  # max abs error / max abs of the reference
_verdicts = {}  # (backend, device, dtype, levels, points, channels) -> None or the error


def self_check_enabled(device):
    """True when a Triton backend's first call on `device` is checked (see module doc)."""
    mode = os.environ.get('OCCNET_MSDA_SELF_CHECK', 'auto')
    if mode not in ('auto', '0', '1'):
        raise ValueError(f"OCCNET_MSDA_SELF_CHECK='{mode}' is unknown; use auto, 0 or 1")
    return mode == '1' or (mode == 'auto' and device.type == 'cuda')


def tiny_case(device, dtype, weight_dtype, levels, points, channels, seed=0):
    """value (1, S, 2, channels) in `dtype`, shapes, locations (1, 19, 2, levels, points, 2)
    fp32 (some off the map) and softmaxed weights in `weight_dtype`, on `device`."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(3 + level, 5 + 2 * level) for level in range(levels)]
    value = torch.randn(1, sum(h * w for h, w in shapes), 2, channels, generator=gen)
    locations = torch.rand(1, 19, 2, levels, points, 2, generator=gen) * 1.2 - 0.1
    weights = torch.rand(1, 19, 2, levels, points, generator=gen).softmax(-1)
    return (value.to(device, dtype), shapes, locations.to(device),
            weights.to(device, weight_dtype))


def _output_and_grads(run, backend, value, shapes, locations, weights):
    inputs = [t.detach().clone().requires_grad_(True) for t in (value, locations, weights)]
    out = run(inputs[0], shapes, inputs[1], inputs[2], backend)
    grad = torch.linspace(-1, 1, out.numel(), device=out.device).view(out.shape)
    out.backward(grad.to(out.dtype))
    return [out.detach()] + [t.grad for t in inputs]


def compare(run, backend, device, dtype, weight_dtype, levels, points, channels):
    """None when `backend` agrees with the float64 reference on a tiny case of this shape
    (output and the gradients of value, locations and weights), else the error as text.
    `run(value, shapes, locations, weights, backend)` calls the op.

    It runs in its own autograd world: not in inference mode, with autocast off, and with
    identity saved-tensor hooks, so a first call inside activation checkpointing (whose
    hooks would take the check's saved tensors for the model's) is checked the same way.
    A CUDA error that leaves the context broken cannot be fallen back from: it is raised,
    naming the backend and the override."""
    case = tiny_case(device, dtype, weight_dtype, levels, points, channels)
    try:
        with torch.inference_mode(False), torch.enable_grad(), \
                torch.autocast(device.type, enabled=False), \
                torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
            got = _output_and_grads(run, backend, *case)
            want = _output_and_grads(run, FALLBACK, case[0].double(), case[1],
                                     case[2].double(), case[3].double())
            if device.type == 'cuda':
                torch.cuda.synchronize(device)  # a faulting kernel reports here
    except Exception as err:  # a compile or launch error of the backend under test
        first_line = (str(err).strip().splitlines() or [''])[0][:300]
        if 'CUDA error' in str(err) or type(err).__name__ == 'AcceleratorError':
            raise RuntimeError(
                f"msda_backend '{backend}' broke the CUDA context in its self-check on "
                f"{device} ({first_line}); set msda_backend = 'pytorch' or 'sparse' in the "
                'config (or OCCNET_MSDA_BACKEND) and please report the error') from err
        return f'{type(err).__name__}: {first_line}'
    for name, g, w in zip(('output', 'value gradient', 'location gradient',
                           'weight gradient'), got, want):
        error = (g.double() - w).abs().max().item() / max(w.abs().max().item(), 1e-6)
        if not error <= TOLERANCE[dtype]:
            return f'{name} differs from the reference by {error:.2e} of its largest value'
    return None


@torch.compiler.disable
def checked_backend(run, backend, value, attention_weights, levels, points):
    """`backend` when it passed its self-check for this kind of call (run now if it is
    the first), else FALLBACK after warning once. A kind of call is a device, value and
    weight dtypes and the kernel shape (levels, points, channels)."""
    if backend not in SELF_CHECKED or not self_check_enabled(value.device):
        return backend
    kind = (value.dtype, attention_weights.dtype, levels, points, value.shape[-1])
    key = (backend, str(value.device)) + kind
    if key not in _verdicts:
        _verdicts[key] = compare(run, backend, value.device, *kind)
        if _verdicts[key] is not None:
            warnings.warn(
                f"occnet: msda_backend '{backend}' failed its self-check on {value.device} "
                f'({str(value.dtype).replace("torch.", "")}, {levels} levels, {points} '
                f'points, {value.shape[-1]} channels): {_verdicts[key]}. These calls fall '
                f"back to the PyTorch reference '{FALLBACK}' (slower, more memory). Set "
                "msda_backend = 'pytorch' or 'sparse' in the config (or "
                'OCCNET_MSDA_BACKEND) to choose a backend yourself, and please report the '
                'error.', RuntimeWarning, stacklevel=3)
    return backend if _verdicts[key] is None else FALLBACK
