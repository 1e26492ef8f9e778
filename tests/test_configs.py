"""Every shipped model config builds, trains one step and predicts on CPU (shrunk)."""
import glob
import os

import pytest
import torch
from mmengine.config import Config

from occnet.registry import MODELS

from conftest import REPO_ROOT
from test_model import make_batch

CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO_ROOT, 'configs', '*', '*.py')) +
                 glob.glob(os.path.join(REPO_ROOT, 'projects', 'configs', '*', '*.py'))
                 if os.sep + '_base_' + os.sep not in p)
SMALL = dict(embed_dims=16, bev=25)


def shrunk_model_cfg(path):
    """The config's model with the sizes a CPU test affords: no pretrained weights, 16
    channels, a 25x25 BEV, one encoder layer (two small cascade stages); the structure
    (backbone depth, DCN, FPN levels, head type, losses) stays as shipped."""
    model = Config.fromfile(path).model
    dims, bev = SMALL['embed_dims'], SMALL['bev']
    model.img_backbone.weights = None
    model.img_neck.out_channels = dims
    encoder = model.bev_encoder
    if encoder.type == 'LSSBEVEncoder':  # FlashOcc: shrink the BEV ResNet
        bev = 40  # divides the grid and is a multiple of the BEV ResNet's 2^stages
        encoder.bev_backbone.update(in_channels=dims, stage_channels=(8,) * len(
            encoder.bev_backbone.stage_channels), out_channels=dims)
    else:
        encoder.update(embed_dims=dims, bev_h=bev, bev_w=bev, num_layers=1, num_heads=2,
                       ffn_dims=32)
    if 'view_transform' in encoder:  # forward projection (FlashOcc, FB-OCC)
        encoder.view_transform.update(bev_h=bev, bev_w=bev)
        encoder.view_transform.depth_net.update(in_channels=dims, mid_channels=dims,
                                                context_channels=dims)
    for head in ('occ_head', 'flow_head'):
        if model.get(head):
            model[head].update(in_channels=dims, bev_h=bev, bev_w=bev)
            for key in ('hidden_dims', 'voxel_dims'):
                if key in model[head]:
                    model[head][key] = 4
            if 'stage_shapes' in model[head]:  # cascade: two small stages
                model[head].update(stage_shapes=((25, 25, 4), (50, 50, 16)), stage_dims=(8, 4),
                                   num_heads=2)
    return model


def depth_feature_stride(model):
    """Input pixels per feature pixel of the neck level the depth net lifts (ResNet stage i
    of out_indices has stride 2 ** (i + 2); the FPN keeps its inputs' strides)."""
    level = model.bev_encoder.view_transform.feat_level
    return 2 ** (model.img_backbone.out_indices[level] + 2)


def batch_for(model, num_frames=2):
    """make_batch samples, with flow labels when the model has a flow head, a camera mask
    when its loss uses one and LiDAR depth maps when its encoder supervises depth."""
    batch = make_batch(1, num_frames=num_frames)
    depth_loss = getattr(model.bev_encoder, 'depth_loss', None)
    for sample in batch['data_samples']:
        if depth_loss is not None:  # 8 cameras of 32 x 64 images at the lifted level's stride
            stride = depth_feature_stride(model)
            sample['depth_maps'] = torch.rand(8, 32 // stride, 64 // stride) * 30
        if model.flow_head is not None:
            sample['voxel_flow'] = torch.full((200, 200, 16, 2), 1.5)
        if model.occ_head.losses.use_camera_mask:
            sample['mask_camera'] = torch.rand(200, 200, 16) > 0.3
    return batch


def test_every_config_is_covered():
    names = [os.path.basename(p) for p in CONFIGS]
    assert 'bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py' in names
    assert 'bev_tiny_occ_r50_nuplan.py' in names and len(names) >= 5


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_config_trains_one_step_and_predicts(path):
    torch.manual_seed(0)
    model = MODELS.build(shrunk_model_cfg(path))
    model.train()
    losses = model(**model.data_preprocessor(batch_for(model), True), mode='loss')
    assert losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(make_batch(1, num_frames=1)), mode='predict')
    assert preds[0]['occ_pred'].shape == (200, 200, 16)
    assert int(preds[0]['occ_pred'].max()) <= 11
    if model.flow_head is not None:
        assert 'loss_flow' in losses and preds[0]['flow_pred'].shape == (200, 200, 16, 2)
    if getattr(model.bev_encoder, 'depth_loss', None) is not None:
        assert losses['loss_depth'] > 0
        # the expected depth of each feature pixel, for the depth metrics
        stride = depth_feature_stride(model)
        assert preds[0]['depth_pred'].shape == (8, 32 // stride, 64 // stride)
        assert (preds[0]['depth_pred'] > 0).all()
