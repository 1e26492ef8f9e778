"""BEVFormerOcc forward/backward, batch consistency and the video test mode on CPU."""
import numpy as np
import pytest
import torch

from occnet.geometry import lidar2img_matrix
from occnet.registry import MODELS

EMBED = 16


def tiny_model_cfg():
    return dict(
        type='BEVFormerOcc',
        data_preprocessor=dict(type='OccDataPreprocessor'),
        img_backbone=dict(type='TorchvisionResNet', depth=18, out_indices=(1, 2)),
        img_neck=dict(type='FPN', in_channels=[128, 256], out_channels=EMBED),
        bev_encoder=dict(type='BEVFormerEncoder', bev_h=25, bev_w=25, embed_dims=EMBED,
                         num_layers=1, num_heads=2, num_levels=2, ffn_dims=32, dropout=0.0),
        occ_head=dict(type='BEVOccHead', in_channels=EMBED, bev_h=25, bev_w=25,
                      hidden_dims=4, loss=dict(type='OccCrossEntropyLoss')))


def camera_rig(width=64, height=32):
    """8 cameras around the origin looking outwards, 1.6 m above the lidar's z=-2 ground."""
    cams = []
    for yaw_deg in (0, 55, 90, 135, -55, -90, -135, 180):
        yaw = np.deg2rad(yaw_deg)
        forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        cams.append(dict(sensor2lidar_rotation=np.stack([right, down, forward], axis=1),
                         sensor2lidar_translation=np.zeros(3),
                         cam_intrinsic=np.array([[width / 2, 0, width / 2],
                                                 [0, width / 2, height / 2], [0, 0, 1]])))
    return np.stack([lidar2img_matrix(c) for c in cams]).astype(np.float32)


def make_batch(batch_size, num_frames=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for b in range(batch_size):
        labels = torch.full((200, 200, 16), 11, dtype=torch.uint8)
        labels[:, :, 3] = 10
        labels[110:120, 95:100, 4:7] = 0
        cur2prev = np.tile(np.eye(4, dtype=np.float32), (num_frames, 1, 1))
        cur2prev[1:, 0, 3] = 2.0
        samples.append(dict(token=f't{b}', prev_token=None,
                            lidar2img=np.tile(camera_rig(), (num_frames, 1, 1, 1)),
                            img_shape=(32, 64), cur2prev=cur2prev,
                            can_bus=np.tile(np.linspace(0, 1, 18, dtype=np.float32),
                                            (num_frames, 1)),
                            queue_valid=np.array([b == 0, True])[-num_frames:],
                            voxel_semantics=labels))
    imgs = [torch.randint(0, 256, (num_frames, 8, 3, 32, 64), generator=gen,
                          dtype=torch.uint8) for _ in range(batch_size)]
    return dict(inputs=dict(imgs=imgs), data_samples=samples)


def build(seed=0):
    torch.manual_seed(seed)
    return MODELS.build(tiny_model_cfg())


def test_loss_backward_and_shapes():
    model = build()
    model.train()
    data = model.data_preprocessor(make_batch(2), True)
    assert data['inputs']['imgs'].shape == (2, 2, 8, 3, 32, 64)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_occ'} and torch.isfinite(losses['loss_occ'])
    losses['loss_occ'].backward()
    grads = [p.grad for p in model.bev_encoder.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert model.img_backbone.stem[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(make_batch(2, num_frames=1)), mode='predict')
    assert [p['token'] for p in preds] == ['t0', 't1']
    assert preds[0]['occ_pred'].shape == (200, 200, 16)
    assert preds[0]['occ_pred'].dtype == torch.uint8


def test_batch_of_two_equals_two_batches_of_one():
    model = build()
    model.eval()
    batch = make_batch(2)
    with torch.no_grad():
        data = model.data_preprocessor(batch)
        imgs, samples = data['inputs']['imgs'], data['data_samples']
        prev2, has2 = model.history_bev(imgs, samples)
        both, _ = model.encode_frame(imgs[:, -1], samples, -1, prev2, has2)
        for b in range(2):
            prev1, has1 = model.history_bev(imgs[b:b + 1], samples[b:b + 1])
            single, _ = model.encode_frame(imgs[b:b + 1, -1], samples[b:b + 1], -1, prev1,
                                               has1)
            torch.testing.assert_close(both[b:b + 1], single, rtol=1e-4, atol=1e-5)


def test_video_mode_resets_at_scene_change():
    model = build()
    model.eval()
    batch = make_batch(1, num_frames=1)
    sample = batch['data_samples'][0]
    with torch.no_grad():
        first = model(**model.data_preprocessor(batch), mode='predict')
        # same frame again, announced as following the first: uses the carried BEV
        sample.update(token='t1', prev_token='t0')
        carried, _ = model.encode_frame(
            model.data_preprocessor(batch)['inputs']['imgs'][:, -1], [sample], -1,
            model._prev_frame['bev'], torch.ones(1, dtype=torch.bool))
        fresh, _ = model.encode_frame(model.data_preprocessor(batch)['inputs']['imgs'][:, -1],
                                      [sample], -1)
        assert not torch.allclose(carried, fresh)
        model(**model.data_preprocessor(batch), mode='predict')
        assert model._prev_frame['token'] == 't1'
        # a frame of a new scene (prev_token not the carried token) starts from scratch
        sample.update(token='n0', prev_token=None)
        model(**model.data_preprocessor(batch), mode='predict')
        assert torch.allclose(model._prev_frame['bev'], fresh)
    assert first[0]['occ_pred'].shape == (200, 200, 16)


def test_bevformer_occ_head_flow_head_and_several_losses():
    cfg = tiny_model_cfg()
    cfg['occ_head'] = dict(type='BEVFormerOccHead', in_channels=EMBED, bev_h=25, bev_w=25,
                           voxel_dims=4, loss=[dict(type='OccFocalLoss'),
                                               dict(type='LovaszSoftmaxLoss', loss_weight=0.5),
                                               dict(type='GeometryScalLoss'),
                                               dict(type='SemanticScalLoss')])
    cfg['flow_head'] = dict(type='FlowHead', in_channels=EMBED, bev_h=25, bev_w=25,
                            hidden_dims=4)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.train()
    batch = make_batch(2)
    for sample in batch['data_samples']:
        flow = torch.zeros(200, 200, 16, 2)
        flow[110:120, 95:100, 4:7] = torch.tensor([3.0, -1.0])  # the vehicle moves
        sample['voxel_flow'] = flow
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert set(losses) == {'loss_occ_focal', 'loss_occ_lovasz', 'loss_occ_geo_scal',
                           'loss_occ_sem_scal', 'loss_flow'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.occ_head.convs[0].weight.grad.abs().sum() > 0
    assert model.flow_head.lift.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(make_batch(1, num_frames=1)), mode='predict')
    assert preds[0]['occ_pred'].shape == (200, 200, 16)
    assert preds[0]['flow_pred'].shape == (200, 200, 16, 2)
    assert preds[0]['flow_pred'].dtype == torch.float32
    del batch['data_samples'][0]['voxel_flow']
    model.train()
    with pytest.raises(ValueError, match='with_flow=True'):
        model(**model.data_preprocessor(batch, True), mode='loss')


def test_cascade_voxel_decoder_trains_and_attends_to_the_images():
    from occnet.models.occ_heads.cascade_voxel_decoder import grid_centres
    centres = grid_centres((2, 4, 2))
    assert centres.shape == (16, 3)
    torch.testing.assert_close(centres[0], torch.tensor([-25.0, -37.5, -2.0]))
    torch.testing.assert_close(centres[-1], torch.tensor([25.0, 37.5, 2.0]))
    torch.testing.assert_close(centres[1], torch.tensor([-25.0, -37.5, 2.0]))  # z fastest
    cfg = tiny_model_cfg()
    cfg['occ_head'] = dict(type='CascadeVoxelDecoder', in_channels=EMBED, bev_h=25, bev_w=25,
                           stage_shapes=((25, 25, 4), (50, 50, 16)), stage_dims=(8, 4),
                           num_heads=2, num_points=2, num_levels=2,
                           loss=dict(type='OccCrossEntropyLoss'))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.train()
    losses = model(**model.data_preprocessor(make_batch(2), True), mode='loss')
    assert torch.isfinite(losses['loss_occ'])
    losses['loss_occ'].backward()
    # the voxel cross-attention of the last stage reads the image features
    assert model.occ_head.stages[1].cross_attn.value_proj.weight.grad.abs().sum() > 0
    assert model.img_backbone.stem[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        batch = make_batch(1, num_frames=1)
        preds = model(**model.data_preprocessor(batch), mode='predict')
        data = model.data_preprocessor(batch)
        bev, context = model.encode_frame(data['inputs']['imgs'][:, -1],
                                          data['data_samples'], -1)
        dark = dict(context, mlvl_feats=[f * 0 for f in context['mlvl_feats']])
        assert not torch.allclose(model.occ_logits(bev, context), model.occ_logits(bev, dark))
    assert preds[0]['occ_pred'].shape == (200, 200, 16)
