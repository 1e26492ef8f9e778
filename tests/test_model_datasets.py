"""Model parts take their classes, free and ignore labels, grid and cameras from the dataset's
description (occnet.descriptions), and the detector hands its dataset to them."""
import math

import numpy as np
import pytest
import torch

from occnet.descriptions import OCC3D_NUSCENES, OPENSCENE, OccDescription
from occnet.models.dataset_arg import with_dataset
from occnet.models.losses import (GeometryScalLoss, LovaszSoftmaxLoss, OccCrossEntropyLoss,
                                  OccFocalLoss, OccupiedFocalLoss, SemanticScalLoss)
from occnet.models.occ_heads import (BEVFormerOccHead, BEVOccHead, CascadeVoxelDecoder,
                                     ChannelToHeightHead, FlowHead)
from occnet.models.occ_heads.cascade_voxel_decoder import grid_centres
from occnet.models.occ_heads.occupancy_loss import OccupancyLosses
from occnet.registry import MODELS

# 2 classes and free = 2 on a 4 x 4 x 2 grid of 1 m voxels; voxels to ignore are labelled 254
SMALL = OccDescription(
    name='small', class_names=('car', 'road'), free_index=2, ignore_index=254,
    evaluated=(0, 1), foreground=(0,), palette=((255, 0, 0), (128, 128, 128), (255, 255, 255)),
    point_cloud_range=(0.0, 0.0, 0.0, 4.0, 4.0, 2.0), voxel_size=1.0, grid_shape=(4, 4, 2),
    grid_frame='ego', camera_names=('CAM_A', 'CAM_B'), image_size=(64, 32))


def logits_of(probs):
    """(1, K, P) logits whose softmax over K is `probs` (P, K)."""
    return torch.tensor(probs, dtype=torch.float64).log().T[None]


@pytest.mark.parametrize('loss_type', [OccCrossEntropyLoss, OccFocalLoss, LovaszSoftmaxLoss,
                                       SemanticScalLoss, GeometryScalLoss])
def test_losses_leave_out_the_descriptions_ignore_label(loss_type):
    probs = [[0.5, 0.2, 0.3], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.2, 0.7, 0.1]]
    kept = loss_type(dataset=SMALL)(logits_of(probs[:3]), torch.tensor([[0, 2, 1]]))
    loss = loss_type(dataset=SMALL)(logits_of(probs), torch.tensor([[0, 2, 1, 254]]))
    assert loss.item() == pytest.approx(kept.item())
    assert loss_type(ignore_index=7, dataset=SMALL).ignore_index == 7  # explicit wins


def test_occupied_focal_loss_ignores_the_descriptions_label():
    logits = torch.zeros(1, 2, 2)  # one logit per occupied class, free (2) has none
    loss = OccupiedFocalLoss(dataset=SMALL)(logits, torch.tensor([[0, 254]]))
    # the voxel of class 0 at p = 0.5 for both classes: positive term 0.25 * 0.5^2 ln 2,
    # negative 0.75 * 0.5^2 ln 2, divided by 1 occupied voxel; the 254 voxel is left out
    assert loss.item() == pytest.approx(0.25 * math.log(2.0), rel=1e-6)


def test_geometry_scal_treats_the_descriptions_free_label_as_empty():
    # p(occupied) = 1 - p(free = 2) = [0.7, 0.2, 0.6], occupied = [1, 0, 1]
    expected = -math.log(1.3 / 1.5) - math.log(1.3 / 2) - math.log(0.8)
    probs = [[0.5, 0.2, 0.3], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]
    loss = GeometryScalLoss(dataset=SMALL)(logits_of(probs), torch.tensor([[0, 2, 1]]))
    assert loss.item() == pytest.approx(expected)
    assert GeometryScalLoss(dataset=OCC3D_NUSCENES).free_index == 17
    assert GeometryScalLoss(free_index=1, dataset=SMALL).free_index == 1


def test_occupancy_losses_hand_the_dataset_to_each_loss_and_mask_with_its_ignore_label():
    both = OccupancyLosses([dict(type='GeometryScalLoss'),
                            dict(type='OccCrossEntropyLoss', ignore_index=7)], dataset=SMALL)
    assert both.losses[0].free_index == 2 and both.losses[0].ignore_index == 254
    assert both.losses[1].ignore_index == 7  # a loss config's own value stays
    losses = OccupancyLosses(dict(type='GeometryScalLoss'), use_camera_mask=True,
                             dataset=SMALL)
    logits = torch.randn(1, 3, 4, 4, 2)
    target = torch.randint(0, 3, (1, 4, 4, 2))
    seen = torch.zeros(1, 4, 4, 2, dtype=torch.bool)
    seen[:, :2] = True
    masked = losses(logits, target, seen)['loss_occ']
    plain = GeometryScalLoss(dataset=SMALL)(logits[:, :, :2], target[:, :2])
    assert masked.item() == pytest.approx(plain.item(), rel=1e-6)


@pytest.mark.parametrize('head_type, kwargs', [
    (BEVOccHead, dict(hidden_dims=4)),
    (BEVFormerOccHead, dict(voxel_dims=4, num_convs=1)),
    (ChannelToHeightHead, dict(hidden_dims=4)),
])
def test_heads_output_the_descriptions_classes_on_its_grid(head_type, kwargs):
    torch.manual_seed(0)
    head = head_type(in_channels=8, bev_h=2, bev_w=2, dataset=SMALL, **kwargs)
    assert head(torch.randn(1, 4, 8)).shape == (1, 3, 4, 4, 2)  # (B, K, X, Y, Z), s = 2
    explicit = head_type(in_channels=8, bev_h=2, bev_w=2, num_classes=5, grid_shape=(2, 2, 3),
                         dataset=SMALL, **kwargs)
    assert explicit(torch.randn(1, 4, 8)).shape == (1, 5, 2, 2, 3)


def test_occ3d_head_outputs_18_logits_and_its_loss_takes_17_as_free():
    torch.manual_seed(0)
    head = BEVOccHead(in_channels=8, bev_h=25, bev_w=25, hidden_dims=4,
                      loss=dict(type='GeometryScalLoss'), dataset=OCC3D_NUSCENES)
    with torch.no_grad():
        logits = head(torch.randn(1, 25 * 25, 8))
    assert logits.shape == (1, 18, 200, 200, 16)  # 18 x Z logits per grid column
    labels = torch.full((1, 200, 200, 16), 17)
    labels[0, :, :, 0] = 11  # driveable surface; everything above is free
    sure = torch.full_like(logits, -20.0).scatter(1, labels[:, None], 20.0)
    assert head.loss(sure, labels)['loss_occ'].item() < 1e-6
    loss = head.loss(logits, labels)['loss_occ'].item()
    assert loss == pytest.approx(GeometryScalLoss(free_index=17)(logits, labels).item())
    assert loss != pytest.approx(GeometryScalLoss(free_index=11)(logits, labels).item())


def test_occ3d_free_without_a_logit_is_17_at_prediction():
    head = BEVOccHead(in_channels=8, bev_h=25, bev_w=25, hidden_dims=4,
                      loss=dict(type='OccupiedFocalLoss'), dataset=OCC3D_NUSCENES)
    assert head.classifier[-1].out_features == 64 * 17  # s * s cells x 17 occupied classes
    logits = torch.full((1, 17, 2, 2, 1), -5.0)
    logits[0, 16, 0, 0, 0] = 5.0  # vegetation, sure
    assert head.predict(logits)[0, :, :, 0].tolist() == [[16, 17], [17, 17]]


def test_flow_head_counts_the_descriptions_foreground():
    head = FlowHead(in_channels=8, bev_h=2, bev_w=2, hidden_dims=4, dataset=OCC3D_NUSCENES,
                    grid_shape=(2, 2, 1))
    labels = torch.tensor([10, 11, 0, 17]).view(1, 2, 2, 1)  # truck, driveable, others, free
    flow = torch.zeros(1, 2, 2, 1, 2)
    flow[0, 0, 0, 0] = torch.tensor([2.0, 2.0])  # the truck moves
    flow[0, 0, 1, 0] = torch.tensor([40.0, 40.0])  # not foreground: not counted
    loss = head.loss(torch.zeros(1, 2, 2, 2, 1), flow, labels)['loss_flow']
    assert loss.item() == pytest.approx(1.0)  # mean |error| over the truck and "others"
    openscene = FlowHead(in_channels=8, bev_h=2, bev_w=2, hidden_dims=4, grid_shape=(2, 2, 1))
    # OpenScene: 10 is background (not foreground), 11 free: only label 0 counts
    assert openscene.loss(torch.zeros(1, 2, 2, 2, 1), flow, labels)['loss_flow'].item() == 0.0


def test_cascade_decoder_spans_the_descriptions_range():
    head = CascadeVoxelDecoder(in_channels=8, bev_h=25, bev_w=25, stage_shapes=((25, 25, 16),),
                               stage_dims=(4,), num_heads=1, num_points=1,
                               dataset=OCC3D_NUSCENES)
    # 3.2 m x 3.2 m x 0.4 m stage voxels over [-40, 40]^2 x [-1, 5.4]
    np.testing.assert_allclose(head.centres_0[0].numpy(), [-38.4, -38.4, -0.8], atol=1e-5)
    np.testing.assert_allclose(head.centres_0[-1].numpy(), [38.4, 38.4, 5.2], atol=1e-5)
    assert head.stages[0].pc_max == (40.0, 40.0, 5.4)
    assert head.predictor[-1].out_features == 64 * 18
    assert grid_centres((1, 1, 1))[0].tolist() == [0.0, 0.0, 0.0]  # OpenScene's by default
    assert grid_centres((1, 1, 1), dataset=SMALL)[0].tolist() == [2.0, 2.0, 1.0]


def test_encoder_and_lss_take_the_descriptions_range_and_cameras():
    encoder = MODELS.build(dict(type='BEVFormerEncoder', bev_h=4, bev_w=4, embed_dims=8,
                                num_layers=1, num_heads=2, ffn_dims=8,
                                dataset=OCC3D_NUSCENES))
    assert encoder.cams_embeds.shape == (6, 8) and encoder.pc_range == (-40, -40, -1, 40, 40, 5.4)
    # 4 pillar anchors at the centres of 1.6 m slices of [-1, 5.4]; 20 m cells from -40 m
    np.testing.assert_allclose(encoder.ref_3d[0].numpy(),
                               [[-30, -30, z] for z in (-0.2, 1.4, 3.0, 4.6)], atol=1e-5)
    assert MODELS.build(dict(type='BEVFormerEncoder', bev_h=4, bev_w=4, embed_dims=8,
                             num_layers=1, num_heads=2, ffn_dims=8)).cams_embeds.shape[0] == 8
    explicit = MODELS.build(dict(type='BEVFormerEncoder', bev_h=4, bev_w=4, embed_dims=8,
                                 num_layers=1, num_heads=2, ffn_dims=8, num_cams=3,
                                 pc_range=(0, 0, 0, 8, 8, 2), dataset=OCC3D_NUSCENES))
    assert explicit.cams_embeds.shape[0] == 3 and explicit.pc_range == (0, 0, 0, 8, 8, 2)
    lss = dict(type='LSSViewTransformer', bev_h=4, bev_w=4, depth_range=(1.0, 33.0, 4.0),
               depth_net=dict(type='CameraAwareDepthNet', in_channels=8, mid_channels=8,
                              context_channels=8, num_bins=8))
    assert MODELS.build(dict(lss, dataset='occ3d_nuscenes')).pc_range == \
        OCC3D_NUSCENES.point_cloud_range
    assert MODELS.build(lss).pc_range == OPENSCENE.point_cloud_range


def test_with_dataset_sets_it_only_where_a_part_takes_one():
    head = dict(type='BEVOccHead', in_channels=8)
    assert with_dataset(head, 'occ3d_nuscenes') == dict(head, dataset='occ3d_nuscenes')
    assert 'dataset' not in head  # the caller's config is left as it was
    own = dict(type='BEVOccHead', dataset='openscene')
    assert with_dataset(own, 'occ3d_nuscenes')['dataset'] == 'openscene'
    assert with_dataset(dict(type='FlowL1Loss'), 'occ3d_nuscenes') == dict(type='FlowL1Loss')
    assert with_dataset(None, 'occ3d_nuscenes') is None
    # FBOccEncoder takes BEVFormerEncoder's arguments, dataset among them, as **kwargs
    assert with_dataset(dict(type='FBOccEncoder'), 'occ3d_nuscenes')['dataset'] == \
        'occ3d_nuscenes'


def test_detector_hands_its_dataset_to_the_encoder_and_heads():
    from test_model import camera_rig, tiny_model_cfg
    torch.manual_seed(0)
    cfg = tiny_model_cfg()
    cfg.update(dataset='occ3d_nuscenes', flow_head=dict(type='FlowHead', in_channels=16,
                                                        bev_h=25, bev_w=25, hidden_dims=4))
    cfg['occ_head']['loss'] = dict(type='GeometryScalLoss')
    model = MODELS.build(cfg)
    assert model.bev_encoder.cams_embeds.shape[0] == 6
    assert model.bev_encoder.pc_range == OCC3D_NUSCENES.point_cloud_range
    assert model.occ_head.num_classes == 18 and model.occ_head.losses.losses[0].free_index == 17
    assert model.flow_head.foreground.tolist() == list(range(11))
    model.eval()
    sample = dict(token='t0', prev_token=None, lidar2img=camera_rig()[None, :6],
                  img_shape=(32, 64), cur2prev=np.eye(4, dtype=np.float32)[None],
                  queue_valid=np.array([True]))
    imgs = [torch.randint(0, 256, (1, 6, 3, 32, 64), dtype=torch.uint8)]
    data = model.data_preprocessor(dict(inputs=dict(imgs=imgs), data_samples=[sample]))
    with torch.no_grad():
        assert model(**data, mode='tensor').shape == (1, 18, 200, 200, 16)


def test_depth_encoders_hand_their_dataset_to_the_view_transform():
    """FlashOcc's and FB-OCC's encoders build their LSS view transform on their own
    dataset's range (FB-OCC checks that the two agree, so a mismatch would not build)."""
    vt = dict(type='LSSViewTransformer', bev_h=4, bev_w=4, depth_range=(1.0, 33.0, 4.0),
              depth_net=dict(type='CameraAwareDepthNet', in_channels=8, mid_channels=8,
                             context_channels=8, num_bins=8))
    flash = MODELS.build(dict(type='LSSBEVEncoder', view_transform=vt, dataset=OCC3D_NUSCENES,
                              bev_backbone=dict(type='BEVResNetFPN', in_channels=8,
                                                stage_channels=(8, 16), out_channels=8)))
    assert flash.view_transform.pc_range == OCC3D_NUSCENES.point_cloud_range
    fbocc = MODELS.build(dict(type='FBOccEncoder', view_transform=vt, bev_h=4, bev_w=4,
                              embed_dims=8, num_layers=1, num_heads=2, ffn_dims=8,
                              dataset='occ3d_nuscenes'))
    assert fbocc.view_transform.pc_range == fbocc.pc_range == \
        OCC3D_NUSCENES.point_cloud_range
    assert len(fbocc.cams_embeds) == 6
