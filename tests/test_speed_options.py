"""Speed and memory options compute the same function as the plain path: activation
checkpointing, bf16 autocast with fp32 geometry, torch.compile."""
import copy

import pytest
import torch

from occnet.registry import MODELS
from test_configs import CONFIGS, shrunk_model_cfg
from test_model import make_batch

BASELINE = next(p for p in CONFIGS if 'tiny_r50' in p)


def loss_and_grads(model, data):
    """Training loss and every parameter gradient of one step, with fixed dropout draws."""
    model.train()
    model.zero_grad()
    torch.manual_seed(1)
    losses = model(**data, mode='loss')
    total = sum(losses.values())
    total.backward()
    return total.detach(), {name: p.grad.clone() for name, p in model.named_parameters()
                            if p.grad is not None}


def test_activation_checkpointing_gives_the_same_loss_and_gradients(monkeypatch):
    from torch.utils.checkpoint import checkpoint

    from occnet.models.backbones import resnet
    from occnet.models.bev_encoders import encoder
    calls = []

    def counting(function, *args, **kwargs):
        calls.append(type(function).__name__)
        return checkpoint(function, *args, **kwargs)
    monkeypatch.setattr(resnet, 'checkpoint', counting)
    monkeypatch.setattr(encoder, 'checkpoint', counting)
    torch.manual_seed(0)
    cfg = shrunk_model_cfg(BASELINE)
    cfg.img_backbone.frozen_stages = -1  # let checkpointing cover trainable stages
    plain = MODELS.build(cfg)
    checkpointed_cfg = copy.deepcopy(cfg)
    checkpointed_cfg.img_backbone.with_cp = True
    checkpointed_cfg.bev_encoder.with_cp = True
    checkpointed = MODELS.build(checkpointed_cfg)
    checkpointed.load_state_dict(plain.state_dict())
    data = plain.data_preprocessor(make_batch(1), True)
    loss, grads = loss_and_grads(plain, data)
    assert not calls
    loss_cp, grads_cp = loss_and_grads(checkpointed, data)
    # 4 ResNet stages and 1 encoder layer for the current frame; the history frame runs
    # without gradient and is not checkpointed
    assert calls.count('Sequential') == 4 and calls.count('BEVFormerLayer') == 1
    torch.testing.assert_close(loss_cp, loss, rtol=1e-6, atol=1e-7)
    assert grads_cp.keys() == grads.keys() and len(grads) > 20
    for name in grads:
        torch.testing.assert_close(grads_cp[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_bf16_autocast_keeps_geometry_fp32_and_the_loss_close(monkeypatch):
    from occnet.engine.amp import AutocastOptimWrapper
    from occnet.models.bev_encoders import spatial_cross_attention, temporal_self_attention
    seen = []

    def recording(module):
        real = module.multi_scale_deformable_attn

        def wrapper(value, shapes, locations, weights, **kwargs):
            seen.append((value.dtype, locations.dtype))
            return real(value, shapes, locations, weights, **kwargs)
        monkeypatch.setattr(module, 'multi_scale_deformable_attn', wrapper)
    recording(spatial_cross_attention)
    recording(temporal_self_attention)
    torch.manual_seed(0)
    model = MODELS.build(shrunk_model_cfg(BASELINE))
    data = model.data_preprocessor(make_batch(1), True)
    loss, _ = loss_and_grads(model, data)
    assert seen and all(dtypes == (torch.float32, torch.float32) for dtypes in seen)
    seen.clear()
    conv_dtypes = []
    model.img_neck.register_forward_hook(lambda m, i, out: conv_dtypes.append(out[0].dtype))
    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    with wrapper.optim_context(model):
        bf16_loss, bf16_grads = loss_and_grads(model, data)
    assert conv_dtypes == [torch.bfloat16] * 2  # history and current frame ran in bf16
    assert seen and all(loc == torch.float32 for _, loc in seen)  # geometry stays fp32
    assert any(value == torch.bfloat16 for value, _ in seen)
    torch.testing.assert_close(bf16_loss, loss, rtol=3e-2, atol=1e-3)
    assert all(torch.isfinite(g).all() for g in bf16_grads.values())


def test_compiled_encoder_and_head_give_the_same_outputs():
    torch.manual_seed(0)
    cfg = shrunk_model_cfg(BASELINE)
    plain = MODELS.build(cfg).eval()
    compiled_cfg = copy.deepcopy(cfg)
    compiled_cfg.compile_modules = ('bev_encoder', 'occ_head')
    compiled = MODELS.build(compiled_cfg).eval()
    assert compiled.state_dict().keys() == plain.state_dict().keys()  # checkpoints load
    compiled.load_state_dict(plain.state_dict())
    data = plain.data_preprocessor(make_batch(1, num_frames=1), False)
    with torch.no_grad():
        want = plain(**data, mode='tensor')
        got = compiled(**data, mode='tensor')
    assert compiled.bev_encoder._compiled_call_impl is not None
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="no part 'bev_encoderr'"):
        MODELS.build(dict(cfg, compile_modules=('bev_encoderr',)))


FLASHOCC = next(p for p in CONFIGS if 'flashocc_r50' in p)


@pytest.mark.parametrize('path', [BASELINE, FLASHOCC], ids=['tiny', 'flashocc'])
def test_channels_last_converts_every_2d_conv_and_gives_the_same_outputs(path):
    torch.manual_seed(0)
    cfg = shrunk_model_cfg(path)
    plain = MODELS.build(cfg).eval()
    fast = MODELS.build(dict(cfg, channels_last=True)).eval()
    fast.load_state_dict(plain.state_dict())
    convs = {name: m for name, m in fast.named_modules() if isinstance(m, torch.nn.Conv2d)}
    parts = {name.split('.')[0] for name in convs}
    assert {'img_backbone', 'img_neck'} <= parts
    # FlashOcc: the depth net and BEV ResNet, the head's 3x3 conv (tiny's head has none)
    assert path != FLASHOCC or {'bev_encoder', 'occ_head'} <= parts
    for name, conv in convs.items():  # 1x1 kernels are both formats at once; test the rest
        if conv.weight.shape[-1] > 1:
            assert conv.weight.is_contiguous(memory_format=torch.channels_last), name
    data = plain.data_preprocessor(make_batch(1, num_frames=1), False)
    with torch.no_grad():
        torch.testing.assert_close(fast(**data, mode='tensor'), plain(**data, mode='tensor'),
                                   rtol=1e-4, atol=1e-4)
