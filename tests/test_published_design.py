"""The models as published (issue 13): properties a wrong implementation breaks.

Points that share an anchor start apart and stay apart, every BEV cell reaches the cascade
decoder, geometry stays fp32 under bf16 autocast, the CAN-bus MLP, the baseline's focal loss
and free threshold, and BEVFormer's temporal self-attention, each against a hand-built case.
"""
import math

import numpy as np
import pytest
import torch

from occnet.models.bev_encoders import spatial_cross_attention as sca_module
from occnet.models.bev_encoders.bev_grid import align_prev_bev, project_to_cameras
from occnet.models.bev_encoders.encoder import BEVFormerEncoder
from occnet.models.bev_encoders.spatial_cross_attention import (SpatialCrossAttention,
                                                                select_camera_queries)
from occnet.models.bev_encoders.temporal_self_attention import TemporalSelfAttention
from occnet.models.losses import OccupiedFocalLoss
from occnet.models.occ_heads import BEVOccHead
from occnet.models.occ_heads.cascade_voxel_decoder import CascadeVoxelDecoder
from occnet.ops import multi_scale_deformable_attn_pytorch
from test_model import camera_rig

RANGE = (-50.0, -50.0, -4.0, 50.0, 50.0, 4.0)


def point_spread(module, rows=3, length=5):
    """(rows, length, heads, levels, points per anchor, anchors, 2) offsets, in feature cells,
    of a freshly made SpatialCrossAttention for random queries."""
    shapes = [(17, 30)] * module.num_levels
    picked = torch.randn(rows, length, module.embed_dims)
    ref = torch.zeros(rows, length, module.num_anchors, 2)
    locations = module.sampling_locations(picked, ref, shapes)
    cells = locations * torch.tensor([30.0, 17.0])
    return cells.view(rows, length, module.num_heads, module.num_levels,
                      module.num_points // module.num_anchors, module.num_anchors, 2)


def assert_points_of_an_anchor_differ(spread, min_cells):
    group = spread.shape[4]
    for i in range(group):
        for j in range(i + 1, group):
            gap = (spread[..., i, :, :] - spread[..., j, :, :]).norm(dim=-1)
            assert gap.min() > min_cells, (i, j, float(gap.min()))


@pytest.mark.parametrize('points, anchors, scale', [(8, 4, 1.0), (4, 1, 1.0), (4, 1, 0.25)])
def test_points_that_share_an_anchor_start_at_different_offsets(points, anchors, scale):
    torch.manual_seed(0)
    module = SpatialCrossAttention(32, num_heads=4, num_levels=2, num_points=points,
                                   num_anchors=anchors, offset_init_scale=scale)
    spread = point_spread(module)
    assert_points_of_an_anchor_differ(spread, min_cells=0.9 * scale)
    # BEVFormer's pattern: point p of head h starts (p + 1) * scale cells along the head's
    # direction; head 0 looks along +x
    flat = spread[0, 0, 0, 0].reshape(points, 2)
    expected = torch.stack([torch.arange(1, points + 1) * scale, torch.zeros(points)], -1)
    assert torch.allclose(flat, expected, atol=1e-5)


def test_encoder_and_cascade_decoder_points_start_apart():
    torch.manual_seed(0)
    encoder = BEVFormerEncoder(bev_h=4, bev_w=4, embed_dims=16, num_layers=1, num_heads=2,
                               num_points_in_pillar=4, spatial_points=8, ffn_dims=16)
    assert_points_of_an_anchor_differ(point_spread(encoder.layers[0].spatial_attn), 0.9)
    decoder = CascadeVoxelDecoder(in_channels=16, bev_h=4, bev_w=4, grid_shape=(8, 8, 4),
                                  stage_shapes=((4, 4, 2), (4, 4, 4)), stage_dims=(16, 8),
                                  num_heads=2, num_points=4,
                                  loss=dict(type='OccCrossEntropyLoss'))
    for stage in decoder.stages:
        assert_points_of_an_anchor_differ(point_spread(stage.cross_attn), 0.9)


def test_zero_spread_with_several_points_per_anchor_is_refused():
    with pytest.raises(ValueError, match='never separate'):
        SpatialCrossAttention(32, num_heads=4, num_points=8, num_anchors=4,
                              offset_init_scale=0.0)


def test_points_of_an_anchor_are_trained_apart():
    """Rows of the offset projection that belong to points of one anchor receive different
    gradients, so training moves them apart (identical points stay identical forever)."""
    torch.manual_seed(0)
    module = SpatialCrossAttention(16, num_heads=2, num_levels=1, num_points=4, num_anchors=2,
                                   dropout=0.0)
    feats = torch.randn(1, 1, 6 * 8, 16)
    query = torch.randn(1, 10, 16)
    ref = torch.rand(1, 1, 10, 2, 2) * 0.6 + 0.2
    cams = select_camera_queries(ref, torch.ones(1, 1, 10, 2, dtype=torch.bool))
    target = torch.randn(1, 10, 16)
    optim = torch.optim.AdamW(module.parameters(), lr=1e-2)
    for _ in range(5):
        optim.zero_grad()
        out = module(query, torch.zeros_like(query), feats, [(6, 8)], cams)
        ((out - target) ** 2).mean().backward()
        optim.step()
    # weight rows (heads, levels, points, xy): points 0 and 2 share anchor 0
    weight = module.sampling_offsets.weight.view(2, 1, 4, 2, 16)
    assert (weight[:, :, 0] - weight[:, :, 2]).abs().max() > 1e-4
    assert (weight[:, :, 1] - weight[:, :, 3]).abs().max() > 1e-4


def rig_inputs(batch=1, channels=8):
    lidar2img = torch.as_tensor(camera_rig())[None].expand(batch, -1, -1, -1)
    feats = [torch.randn(batch, 8, channels, 4, 8)]
    return feats, lidar2img, torch.tensor([[32, 64]] * batch), (32, 64)


@pytest.mark.parametrize('first_stage', [(4, 4, 2), (16, 16, 2)])
def test_every_bev_cell_gets_gradient_through_the_cascade_decoder(first_stage):
    """A 16x16 BEV into a 4x4 first stage (area pooling) or one at the BEV's own grid."""
    torch.manual_seed(0)
    decoder = CascadeVoxelDecoder(in_channels=8, bev_h=16, bev_w=16, grid_shape=(16, 16, 4),
                                  stage_shapes=(first_stage, (16, 16, 4)), stage_dims=(8, 8),
                                  num_heads=2, num_points=4,
                                  loss=dict(type='OccCrossEntropyLoss'))
    feats, lidar2img, image_hw, padded = rig_inputs()
    bev = torch.randn(1, 16 * 16, 8, requires_grad=True)
    logits = decoder(bev, feats, lidar2img, image_hw, padded)
    (logits * torch.randn_like(logits)).sum().backward()
    assert (bev.grad.abs().sum(-1) > 0).all()


def rig_960(batch=1):
    """The 8-camera rig at 960 x 544 pixels (focal 480 px)."""
    return torch.as_tensor(camera_rig(960, 544))[None].expand(batch, -1, -1, -1)


def record_locations(monkeypatch):
    """Record the sampling locations every deformable attention call receives."""
    calls = []
    import occnet.models.bev_encoders.temporal_self_attention as tsa_module

    def recorder(value, shapes, locations, weights):
        calls.append(locations.detach().clone())
        return multi_scale_deformable_attn_pytorch(value, shapes, locations, weights)
    monkeypatch.setattr(sca_module, 'multi_scale_deformable_attn', recorder)
    monkeypatch.setattr(tsa_module, 'multi_scale_deformable_attn', recorder)
    return calls


def test_projection_is_fp32_under_bf16_autocast():
    points = torch.tensor([[[13.37, -7.91, -1.23]], [[31.4, 2.7, 0.9]], [[-8.3, 24.1, -1.9]]])
    image_hw = torch.tensor([[544, 960]])
    reference = project_to_cameras(points, rig_960(), image_hw, (544, 960))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        uv, visible = project_to_cameras(points, rig_960(), image_hw, (544, 960))
    assert uv.dtype == torch.float32
    pixels = (uv - reference[0]).abs() * torch.tensor([960.0, 544.0])
    assert pixels[reference[1]].max() < 1e-4
    assert torch.equal(visible, reference[1]) and visible.sum() >= 3


@pytest.mark.parametrize('part', ['encoder', 'cascade'])
def test_sampling_locations_are_fp32_and_exact_under_bf16_autocast(part, monkeypatch):
    torch.manual_seed(0)
    calls = record_locations(monkeypatch)
    feats = [torch.randn(1, 8, 16, 17, 30)]
    image_hw = torch.tensor([[540, 960]])
    if part == 'encoder':
        module = BEVFormerEncoder(bev_h=20, bev_w=20, embed_dims=16, num_layers=2,
                                  num_heads=2, ffn_dims=16, pc_range=RANGE)
        prev = torch.randn(1, 400, 16)
        cur2prev = torch.tensor([[[0.9986, -0.0523, 0, 1.37], [0.0523, 0.9986, 0, -0.21],
                                  [0, 0, 1, 0], [0, 0, 0, 1]]])

        def run():
            return module(feats, rig_960(), image_hw, (544, 960), prev, cur2prev)
    else:
        module = CascadeVoxelDecoder(in_channels=16, bev_h=20, bev_w=20, grid_shape=(20, 20, 8),
                                     stage_shapes=((20, 20, 4), (20, 20, 8)),
                                     stage_dims=(16, 8), num_heads=2, num_points=4,
                                     loss=dict(type='OccCrossEntropyLoss'))
        bev = torch.randn(1, 400, 16)

        def run():
            return module(bev, feats, rig_960(), image_hw, (544, 960))
    module.eval()
    with torch.no_grad():
        run()
        reference = list(calls)
        calls.clear()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            run()
    assert len(calls) == len(reference) > 0
    for got, want in zip(calls, reference):
        assert got.dtype == torch.float32
        # in pixels of the 960 x 544 input (or BEV cells for temporal self-attention)
        assert ((got - want).abs() * 960).max() < 1e-4


def test_ego_motion_alignment_is_fp32_under_autocast():
    torch.manual_seed(0)
    prev = torch.randn(1, 400, 4)
    cur2prev = torch.tensor([[[0.8, -0.6, 0, 3.3], [0.6, 0.8, 0, -1.7], [0, 0, 1, 0],
                              [0, 0, 0, 1]]])
    reference = align_prev_bev(prev, cur2prev, 20, 20, RANGE)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        aligned = align_prev_bev(prev, cur2prev, 20, 20, RANGE)
    assert aligned.dtype == torch.float32
    assert torch.allclose(aligned, reference, atol=1e-6)


def test_pytorch_backend_keeps_fp32_locations_with_bf16_values():
    """A ramp along x sampled at x = 123.37 px: the fp32 location gives 0.37; rounding the
    location to bf16 moves it by about 0.1 px."""
    width = 200
    value = (torch.arange(width, dtype=torch.float32) - 123).bfloat16().view(1, width, 1, 1)
    locations = torch.tensor([(123.37 + 0.5) / width, 0.5]).view(1, 1, 1, 1, 1, 2)
    weights = torch.ones(1, 1, 1, 1, 1, dtype=torch.bfloat16)
    out = multi_scale_deformable_attn_pytorch(value, [(1, width)], locations, weights)
    assert out.dtype == torch.bfloat16
    assert abs(float(out) - 0.37) < 0.003


def test_camera_selection_runs_once_per_frame(monkeypatch):
    counted = []

    def counting(ref_cam, visible):
        counted.append(1)
        return select_camera_queries(ref_cam, visible)
    import occnet.models.bev_encoders.encoder as encoder_module
    monkeypatch.setattr(encoder_module, 'select_camera_queries', counting)
    encoder = BEVFormerEncoder(bev_h=10, bev_w=10, embed_dims=8, num_layers=3, num_heads=2,
                               ffn_dims=8, pc_range=RANGE)
    feats, lidar2img, image_hw, padded = rig_inputs()
    encoder(feats, lidar2img, image_hw, padded)
    assert len(counted) == 1


def test_triton_level_table_is_made_once():
    from occnet.ops.msda_triton import _level_tables
    first = _level_tables([(17, 30), (9, 15)], torch.device('cpu'))
    again = _level_tables([(17, 30), (9, 15)], torch.device('cpu'))
    assert all(a is b for a, b in zip(first, again))
    assert first[1].tolist() == [0, 17 * 30]


def test_can_bus_changes_the_bev_only_when_on():
    feats, lidar2img, image_hw, padded = rig_inputs()
    can_a = torch.zeros(1, 18)
    can_b = torch.zeros(1, 18)
    can_b[0, 0], can_b[0, 13], can_b[0, 17] = 1.2, 8.0, 3.0  # moved, speed, turned
    for use_can_bus in (True, False):
        torch.manual_seed(0)
        encoder = BEVFormerEncoder(bev_h=10, bev_w=10, embed_dims=8, num_layers=1,
                                   num_heads=2, ffn_dims=8, pc_range=RANGE, dropout=0.0,
                                   use_can_bus=use_can_bus)
        bev_a = encoder(feats, lidar2img, image_hw, padded, can_bus=can_a)
        bev_b = encoder(feats, lidar2img, image_hw, padded, can_bus=can_b)
        assert (not torch.allclose(bev_a, bev_b)) == use_can_bus
    with pytest.raises(ValueError, match='can_bus'):
        BEVFormerEncoder(bev_h=10, bev_w=10, embed_dims=8, use_can_bus=True)(
            feats, lidar2img, image_hw, padded)


def test_occupied_focal_loss_by_hand():
    """Two occupied-class logits per voxel (free = 2 has none), gamma 2, alpha 0.25.
    At logit 0 (p = 1/2) a positive costs 0.25 * 0.25 * ln 2 and a negative 0.75 * 0.25 *
    ln 2; at logit ln 3 (p = 3/4) a positive costs 0.25 * (1/4)^2 * ln(4/3)."""
    loss = OccupiedFocalLoss(alpha=0.25, gamma=2.0, loss_weight=2.0)
    logits = torch.tensor([[0.0, 0.0],              # class 0
                           [0.0, 0.0],              # free: negative for both classes
                           [0.0, math.log(3.0)],    # class 1
                           [5.0, -5.0]])            # ignored
    target = torch.tensor([0, 2, 1, 255])
    ln2 = math.log(2.0)
    pos0, neg0 = 0.25 * 0.25 * ln2, 0.75 * 0.25 * ln2
    pos_ln3 = 0.25 * (1 / 16) * math.log(4 / 3)
    total = (pos0 + neg0) + 2 * neg0 + (neg0 + pos_ln3)
    expected = 2.0 * total / 2  # normalised by the two occupied voxels
    got = loss(logits.t()[None], target[None])
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_free_threshold_at_prediction_and_prior_bias():
    torch.manual_seed(0)
    head = BEVOccHead(in_channels=8, bev_h=4, bev_w=4, grid_shape=(4, 4, 2), hidden_dims=4,
                      loss=dict(type='OccupiedFocalLoss', free_threshold=0.25))
    logits = head(torch.randn(1, 16, 8))
    assert logits.shape == (1, 11, 4, 4, 2)  # no free logit
    # every class starts at probability 0.01, so everything is free before training
    assert torch.allclose(head.classifier[-1].bias, torch.full((11,), math.log(0.01 / 0.99)))
    assert (head.predict(logits) == 11).all()
    # highest probability sigmoid(-1.5) = 0.18 < 0.25 -> free; sigmoid(-1) = 0.27 -> class 4
    logits = torch.full((1, 11, 1, 1, 2), -3.0)
    logits[0, 2, 0, 0, 0] = -1.5
    logits[0, 4, 0, 0, 1] = -1.0
    assert head.predict(logits).flatten().tolist() == [11, 4]


def test_losses_must_agree_on_free_space():
    with pytest.raises(ValueError, match='disagree on free space'):
        BEVOccHead(in_channels=8, bev_h=4, bev_w=4, grid_shape=(4, 4, 2),
                   loss=[dict(type='OccupiedFocalLoss'), dict(type='LovaszSoftmaxLoss')])


def hand_built_tsa(mode):
    """1 head, 2 channels, 2 points per slot: point 0 on the cell, point 1 one cell further
    along the BEV columns. Attention logits: slot 0 [0, ln 3], slot 1 [ln 3, 0]. Value and
    output projections are the identity."""
    tsa = TemporalSelfAttention(embed_dims=2, num_heads=1, num_points=2, dropout=0.0,
                                mode=mode)
    with torch.no_grad():
        for proj in (tsa.value_proj, tsa.output_proj):
            proj.weight.copy_(torch.eye(2))
            proj.bias.zero_()
        tsa.sampling_offsets.weight.zero_()
        tsa.sampling_offsets.bias.copy_(torch.tensor([0.0, 0, 1, 0, 0, 0, 1, 0]))
        tsa.attention_weights.weight.zero_()
        tsa.attention_weights.bias.copy_(torch.tensor([0.0, math.log(3), math.log(3), 0]))
    return tsa


def test_published_temporal_self_attention_by_hand():
    from occnet.models.bev_encoders.bev_grid import bev_reference_points_2d
    ref_2d = bev_reference_points_2d(1, 3)  # cells 0, 1, 2 along the columns
    query = torch.tensor([[[1.0, 0], [2, 0], [4, 0]]] * 2)
    initial = torch.tensor([[[0.0, 1], [0, 2], [0, 4]]] * 2)
    prev = torch.tensor([[[10.0, 10], [20, 20], [40, 40]]] * 2)
    pos = torch.zeros(1, 3, 2)

    def shifted(x):  # the value one cell further along, zero past the edge
        return torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], dim=1)
    tsa = hand_built_tsa('published')
    # with history: slots [prev, initial], each slot's softmax, the slots averaged
    out = tsa(query, pos, ref_2d, (1, 3), initial, prev, torch.tensor([True, False]))
    with_history = query + 0.5 * (0.25 * prev + 0.75 * shifted(prev)) + 0.5 * (
        0.75 * initial + 0.25 * shifted(initial))
    without = query + 0.5 * query + 0.5 * shifted(query)  # the query in both slots
    assert torch.allclose(out[0], with_history[0], atol=1e-6)
    assert torch.allclose(out[1], without[1], atol=1e-6)
    # cell 0 of sample 0, channel 0, worked out:
    # 1 + 0.5 * (0.25 * 10 + 0.75 * 20) + 0.5 * (0.75 * 0 + 0.25 * 0) = 9.75
    assert out[0, 0, 0].item() == pytest.approx(9.75)
    # no history at all is the same as history flagged missing
    alone = tsa(query, pos, ref_2d, (1, 3), initial)
    assert torch.allclose(alone[1], out[1], atol=1e-6)

    joint = hand_built_tsa('joint')
    # one softmax over the four points: weights [1, 3, 3, 1] / 8; slots [prev, query]
    out = joint(query, pos, ref_2d, (1, 3), initial, prev)
    expected = query + (prev + 3 * shifted(prev) + 3 * query + shifted(query)) / 8
    assert torch.allclose(out, expected, atol=1e-6)


def test_can_bus_reaches_the_encoder_through_the_detector():
    from test_model import make_batch, tiny_model_cfg

    from occnet.registry import MODELS
    cfg = tiny_model_cfg()
    cfg['bev_encoder']['use_can_bus'] = True
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    batch = make_batch(1, num_frames=1)
    del batch['data_samples'][0]['can_bus']
    with pytest.raises(ValueError, match="'can_bus'"):
        model.test_step(batch)
    outputs = []
    for speed in (0.0, 9.0):
        batch['data_samples'][0]['can_bus'] = np.zeros((1, 18), dtype=np.float32)
        batch['data_samples'][0]['can_bus'][0, 13] = speed
        data = model.data_preprocessor(batch)
        with torch.no_grad():
            bev, _ = model.encode_frame(data['inputs']['imgs'][:, -1], data['data_samples'],
                                        -1)
        outputs.append(bev)
    assert not torch.allclose(*outputs)


def test_motion_since_the_previous_frame_is_zeroed_without_history():
    from occnet.models.detectors.bevformer_occ import without_history_motion
    can_bus = torch.arange(36, dtype=torch.float32).view(2, 18) + 1
    moved = [0, 1, 2, 17]
    kept = [i for i in range(18) if i not in moved]
    # no previous BEV at all: the motion entries are zero, the rest as measured
    alone = without_history_motion(can_bus, None, None)
    assert (alone[:, moved] == 0).all() and torch.equal(alone[:, kept], can_bus[:, kept])
    # sample 0 has its previous BEV, sample 1 does not
    mixed = without_history_motion(can_bus, torch.zeros(2, 4, 8), torch.tensor([True, False]))
    assert torch.equal(mixed[0], can_bus[0])
    assert (mixed[1, moved] == 0).all() and torch.equal(mixed[1, kept], can_bus[1, kept])
    assert torch.equal(without_history_motion(can_bus, torch.zeros(2, 4, 8), None), can_bus)


def test_openscene_classifier_layers():
    head = BEVOccHead(in_channels=8, bev_h=4, bev_w=4, grid_shape=(4, 4, 2), hidden_dims=6,
                      classifier='openscene', num_fcs=2, loss=dict(type='OccupiedFocalLoss'))
    kinds = [type(layer).__name__ for layer in head.classifier]
    assert kinds == ['Linear', 'LayerNorm', 'ReLU', 'Linear', 'LayerNorm', 'ReLU', 'Linear']
    assert head.classifier[-1].out_features == 11 and head.lift.out_features == 2 * 6
