"""The Triton backends' self-check: a failure injected on CPU (compile error, wrong values)
warns once, names the error and the msda_backend override, and falls back to the reference;
a backend that agrees is used without a word."""
import sys
import warnings

import pytest
import torch

from msda_cases import random_case
from occnet.ops import msda_self_check, multi_scale_deformable_attn
from occnet.ops.multi_scale_deformable_attn import multi_scale_deformable_attn_pytorch

DISPATCH = sys.modules['occnet.ops.multi_scale_deformable_attn']


@pytest.fixture
def fake_triton(monkeypatch):
    """Runs 'triton' on CPU through `behaviour(value, shapes, locations, weights)`, with the
    self-check on and no verdicts yet; returns the list of calls."""
    monkeypatch.setenv('TRITON_INTERPRET', '1')  # lets 'triton' resolve on CPU tensors
    monkeypatch.setenv('OCCNET_MSDA_SELF_CHECK', '1')
    monkeypatch.setattr(msda_self_check, '_verdicts', {})
    calls = []

    def install(behaviour):
        def fake(value, shapes, locations, weights, value_grad='atomic'):
            calls.append(value.shape)
            return behaviour(value, shapes, locations, weights)
        monkeypatch.setattr(DISPATCH, 'multi_scale_deformable_attn_triton', fake)
        return calls
    return install


def _compile_error(*args):
    raise RuntimeError('PTXASError: ptxas fatal : Value of threads per SM out of range')


def _twice_the_reference(*args):
    return 2 * multi_scale_deformable_attn_pytorch(*args)


@pytest.mark.parametrize('behaviour, reason', [(_compile_error, 'RuntimeError: PTXASError'),
                                               (_twice_the_reference, 'output differs')])
def test_a_failing_kernel_warns_once_and_falls_back(fake_triton, behaviour, reason):
    calls = fake_triton(behaviour)
    value, shapes, locations, weights = random_case(0, bs=1, queries=7, heads=2, dims=8)
    with pytest.warns(RuntimeWarning) as record:
        out = multi_scale_deformable_attn(value, shapes, locations, weights, backend='triton')
    message = str(record[0].message)
    assert len(record) == 1 and reason in message
    assert "msda_backend 'triton' failed its self-check" in message
    assert "msda_backend = 'pytorch'" in message and '3 levels, 4 points, 8 channels' in message
    torch.testing.assert_close(out, multi_scale_deformable_attn_pytorch(value, shapes,
                                                                        locations, weights))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no second warning for the same kind of call
        multi_scale_deformable_attn(value, shapes, locations, weights, backend='triton')
    assert len(calls) == 1  # only the self-check tried the kernel


def test_a_kernel_that_agrees_is_used_silently(fake_triton):
    calls = fake_triton(multi_scale_deformable_attn_pytorch)
    value, shapes, locations, weights = random_case(1, bs=1, queries=7, heads=2, dims=8)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for _ in range(2):
            multi_scale_deformable_attn(value, shapes, locations, weights, backend='triton')
    assert len(calls) == 3  # one self-check, then both calls
    # a new dtype or kernel shape is a new kind of call, checked again
    multi_scale_deformable_attn(value[..., :4].contiguous(), shapes, locations, weights,
                                backend='triton')
    assert len(calls) == 5


def test_when_the_self_check_runs(monkeypatch):
    monkeypatch.delenv('OCCNET_MSDA_SELF_CHECK', raising=False)
    assert not msda_self_check.self_check_enabled(torch.device('cpu'))
    assert msda_self_check.self_check_enabled(torch.device('cuda', 0))
    monkeypatch.setenv('OCCNET_MSDA_SELF_CHECK', '0')
    assert not msda_self_check.self_check_enabled(torch.device('cuda', 0))
    monkeypatch.setenv('OCCNET_MSDA_SELF_CHECK', 'yes')
    with pytest.raises(ValueError, match='use auto, 0 or 1'):
        msda_self_check.self_check_enabled(torch.device('cpu'))


def test_a_first_call_inside_checkpointing_or_inference_mode_is_checked_cleanly(fake_triton):
    """The check runs its own forward and backward: inside activation checkpointing (whose
    saved-tensor hooks would take its tensors) and inference mode it must still pass, and
    the checkpointed step must still backpropagate."""
    calls = fake_triton(multi_scale_deformable_attn_pytorch)
    value, shapes, locations, weights = random_case(2, bs=1, queries=7, heads=2, dims=8)
    leaf = value.clone().requires_grad_(True)

    def attend(v):
        return multi_scale_deformable_attn(v, shapes, locations, weights, backend='triton')

    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = torch.utils.checkpoint.checkpoint(attend, leaf, use_reentrant=False)
        out.sum().backward()
        with torch.inference_mode():
            attend(value[..., :4].contiguous())  # a new kind of call: checked in here
    want = value.clone().requires_grad_(True)
    multi_scale_deformable_attn_pytorch(want, shapes, locations, weights).sum().backward()
    torch.testing.assert_close(leaf.grad, want.grad)
    assert len(calls) == 5  # check, forward, recompute; check, forward
