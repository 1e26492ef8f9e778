"""Every tensor a model forward makes is born on its input's device.

With the default device set to 'meta', a tensor made without `device=` lands on meta, and
mixing it with the CPU inputs raises ("Tensor on device meta is not on the expected device
cpu"). On a CUDA machine the same tensor would be made on the CPU and either raise or copy
host to device on every step; this catches it on a CPU-only machine.
"""
import os
from contextlib import contextmanager

import pytest
import torch

from occnet.registry import MODELS
from test_configs import CONFIGS, batch_for, config_dataset, described_batch, shrunk_model_cfg
from test_model import EMBED, make_batch, tiny_model_cfg
from test_speed_options import BASELINE


@contextmanager
def default_device(device):
    """Make `device` the default of torch's factory functions, restoring the old default."""
    previous = torch.get_default_device()
    torch.set_default_device(device)
    try:
        yield
    finally:
        torch.set_default_device(None if previous.type == 'cpu' else previous)


def test_the_meta_default_catches_a_tensor_made_without_a_device():
    inputs = torch.ones(3)
    with default_device('meta'):
        assert (inputs + torch.ones(3, device=inputs.device)).device.type == 'cpu'
        with pytest.raises(RuntimeError, match='meta'):
            inputs + torch.ones(3)
    assert torch.ones(1).device.type == 'cpu'  # the default is restored


def light_model_cfg(path):
    """shrunk_model_cfg with a ResNet-18 of the same output stages, DCN stages and FPN levels
    in place of a deeper ResNet: depth adds time, not tensor creation."""
    cfg = shrunk_model_cfg(path)
    cfg.img_backbone.depth = 18
    cfg.img_neck.in_channels = [64 * 2 ** i for i in cfg.img_backbone.out_indices]
    return cfg


def next_frame_batch(description):
    """described_batch's frame again, announced as the frame after it (video mode carries
    the BEV)."""
    batch = described_batch(description, num_frames=1)
    batch['data_samples'][0].update(token='t1', prev_token='t0')
    return batch


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_forward_and_backward_make_tensors_on_the_input_device(path):
    torch.manual_seed(0)
    model = MODELS.build(light_model_cfg(path))
    description = config_dataset(path)  # the batches take the dataset's cameras and labels
    train_batch = batch_for(model, description)
    test_batches = (described_batch(description, 1), next_frame_batch(description))
    with default_device('meta'):
        model.train()
        losses = model(**model.data_preprocessor(train_batch, True), mode='loss')
        sum(losses.values()).backward()
        model.eval()
        with torch.no_grad():
            preds = [pred for batch in test_batches
                     for pred in model(**model.data_preprocessor(batch), mode='predict')]
    assert all(v.device.type == 'cpu' and torch.isfinite(v) for v in losses.values())
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.device.type == 'cpu' for g in grads)
    assert [p['token'] for p in preds] == ['t0', 't1']
    assert all(t.device.type == 'cpu' for p in preds for t in p.values()
               if isinstance(t, torch.Tensor))
    assert preds[0]['occ_pred'].shape == description.grid_shape


def test_checkpointing_and_bf16_autocast_make_tensors_on_the_input_device():
    """The memory options of a GPU run: recomputed activations and autocast regions."""
    cfg = light_model_cfg(BASELINE)
    cfg.img_backbone.frozen_stages = -1  # let checkpointing cover trainable stages
    cfg.img_backbone.with_cp = cfg.bev_encoder.with_cp = True
    torch.manual_seed(0)
    model = MODELS.build(cfg).train()
    batch = batch_for(model, config_dataset(BASELINE))
    with default_device('meta'):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            losses = model(**model.data_preprocessor(batch, True), mode='loss')
        sum(losses.values()).backward()
    assert all(v.device.type == 'cpu' and torch.isfinite(v) for v in losses.values())
    assert model.img_backbone.stem[0].weight.grad.device.type == 'cpu'


@pytest.mark.parametrize('head', ['mlp_classifier', 'every_loss_and_flow'])
def test_head_variants_outside_the_configs_make_tensors_on_the_input_device(head):
    """The 'mlp' classifier of BEVOccHead, and the losses and flow head no shipped config
    combines (focal, Lovasz, scene-class affinity)."""
    cfg = tiny_model_cfg()
    if head == 'mlp_classifier':
        cfg['occ_head'].update(classifier='mlp', activation='relu', bev_convs=1)
    else:
        cfg['occ_head'] = dict(type='BEVFormerOccHead', in_channels=EMBED, bev_h=25, bev_w=25,
                               voxel_dims=4, loss=[dict(type='OccFocalLoss'),
                                                   dict(type='LovaszSoftmaxLoss'),
                                                   dict(type='GeometryScalLoss'),
                                                   dict(type='SemanticScalLoss')])
        cfg['flow_head'] = dict(type='FlowHead', in_channels=EMBED, bev_h=25, bev_w=25,
                                hidden_dims=4)
    torch.manual_seed(0)
    model = MODELS.build(cfg).train()
    batch = make_batch(1)
    if model.flow_head is not None:
        batch['data_samples'][0]['voxel_flow'] = torch.full((200, 200, 16, 2), 1.5)
    with default_device('meta'):
        losses = model(**model.data_preprocessor(batch, True), mode='loss')
        sum(losses.values()).backward()
    assert len(losses) == (1 if head == 'mlp_classifier' else 5)
    assert all(v.device.type == 'cpu' and torch.isfinite(v) for v in losses.values())
