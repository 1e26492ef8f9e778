"""Deformable convolution and the DCN ResNet variant."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from occnet.models.backbones.deform_conv import ModulatedDeformConv2d
from occnet.registry import MODELS


def dcn_with(offset_dy, offset_dx, mask_logit):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    dcn = ModulatedDeformConv2d(conv)
    with torch.no_grad():
        taps = 9
        dcn.conv_offset.bias[0:2 * taps:2] = offset_dy
        dcn.conv_offset.bias[1:2 * taps:2] = offset_dx
        dcn.conv_offset.bias[2 * taps:] = mask_logit
    return conv, dcn


def test_zero_offsets_full_mask_is_the_plain_conv():
    conv, dcn = dcn_with(0.0, 0.0, 30.0)  # sigmoid(30) = 1
    x = torch.randn(2, 3, 9, 11)
    torch.testing.assert_close(dcn(x), conv(x), rtol=1e-4, atol=1e-5)
    fresh = ModulatedDeformConv2d(conv)  # as built: no offset, masks of 0.5
    half = 0.5 * F.conv2d(x, conv.weight, padding=1) + conv.bias[:, None, None]
    torch.testing.assert_close(fresh(x), half, rtol=1e-4, atol=1e-5)


def test_an_offset_of_one_pixel_shifts_the_sampling():
    conv, dcn = dcn_with(0.0, 1.0, 30.0)  # every tap samples one pixel to the right
    x = torch.randn(1, 3, 8, 10)
    shifted = conv(x[..., 1:])  # the conv of the image moved one pixel left
    torch.testing.assert_close(dcn(x)[..., 1:-2], shifted[..., 1:-1], rtol=1e-4, atol=1e-5)


def test_dcn_resnet_replaces_stage_3_4_convs_and_trains():
    backbone = MODELS.build(dict(type='TorchvisionResNet', depth=18, out_indices=(2, 3),
                                 dcn_stages=(False, False, True, True)))
    kinds = [type(block.conv2).__name__ for stage in backbone.stages for block in stage]
    assert kinds == ['Conv2d'] * 4 + ['ModulatedDeformConv2d'] * 4
    outs = backbone(torch.randn(1, 3, 64, 64))
    assert [o.shape for o in outs] == [(1, 256, 4, 4), (1, 512, 2, 2)]
    sum(o.sum() for o in outs).backward()
    assert backbone.stages[3][0].conv2.conv_offset.weight.grad.abs().sum() > 0


def test_weights_from_a_local_file_load_into_plain_and_dcn_convs(tmp_path):
    import torchvision
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / 'r18.pth'
    torch.save(reference, path)
    backbone = MODELS.build(dict(type='TorchvisionResNet', depth=18, out_indices=(3,),
                                 weights=str(path), dcn_stages=(False, False, True, True)))
    backbone.init_weights()
    assert torch.equal(backbone.stem[0].weight, reference['conv1.weight'])
    assert torch.equal(backbone.stages[1][0].conv2.weight, reference['layer2.0.conv2.weight'])
    assert torch.equal(backbone.stages[2][1].conv2.weight, reference['layer3.1.conv2.weight'])


def test_offline_weights_name_says_which_file_to_download(monkeypatch):
    import torchvision
    from urllib.error import URLError

    def offline(self, *args, **kwargs):
        raise URLError('no network')
    monkeypatch.setattr(torchvision.models.ResNet18_Weights, 'get_state_dict', offline)
    backbone = MODELS.build(dict(type='TorchvisionResNet', depth=18, out_indices=(3,),
                                 weights='IMAGENET1K_V1'))
    with pytest.raises(RuntimeError, match='Download https://download.pytorch.org/models/'
                       'resnet18-.*pth on a machine with internet and set the backbone '
                       '`weights` to its local path'):
        backbone.init_weights()


def test_fpn_out_ids_returns_the_merged_level_and_leaves_no_parameter_unused():
    from occnet.models.necks.fpn import FPN
    torch.manual_seed(0)
    full = FPN([4, 6], out_channels=3)
    picked = FPN([4, 6], out_channels=3, out_ids=(0,))
    picked.lateral_convs.load_state_dict(full.lateral_convs.state_dict())
    picked.output_convs[0].load_state_dict(full.output_convs[0].state_dict())
    feats = (torch.randn(1, 4, 8, 8), torch.randn(1, 6, 4, 4))
    outs = picked(feats)
    # the fine level, top-down merged with the coarse one, as the full FPN's first output
    assert len(outs) == 1 and torch.equal(outs[0], full(feats)[0])
    outs[0].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in picked.parameters())
    with pytest.raises(ValueError, match='out_ids'):
        FPN([4, 6], out_channels=3, num_outs=3, out_ids=(0,))
