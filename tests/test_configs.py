"""Every shipped model config builds, trains one step and predicts on CPU (shrunk)."""
import glob
import os
import pickle

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from occnet.datasets.synthetic.writer import write_pcd
from occnet.descriptions import OCC3D_NUSCENES, OPENSCENE, get_description
from occnet.registry import DATASETS, METRICS, MODELS

from conftest import REPO_ROOT
from test_model import make_batch
from test_occ3d_eval import FREE, PEDESTRIAN, TRUCK, V2, V3, V4, scene

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


def config_dataset(path):
    """The OccDescription of the dataset the config's model names (BEVFormerOcc's default,
    OpenScene, when it names none)."""
    return get_description(Config.fromfile(path).model.get('dataset', OPENSCENE.name))


def described_batch(description, num_frames=2):
    """make_batch's sample in the shape of `description`'s data: its cameras (the first N of
    make_batch's 8-camera rig, images and lidar2img alike) and its free label; make_batch's
    occupied labels (0 and 10) are classes of every described dataset. An OpenScene
    description gets make_batch's batch unchanged."""
    batch = make_batch(1, num_frames=num_frames)
    num_cams = len(description.camera_names)
    batch['inputs']['imgs'] = [imgs[:, :num_cams] for imgs in batch['inputs']['imgs']]
    for sample in batch['data_samples']:
        sample['lidar2img'] = sample['lidar2img'][:, :num_cams]
        labels = sample['voxel_semantics']
        labels[labels == OPENSCENE.free_index] = description.free_index
    return batch


def batch_for(model, description, num_frames=2):
    """described_batch samples, with flow labels when the model has a flow head, a camera
    mask when its loss uses one and LiDAR depth maps when its encoder supervises depth."""
    batch = described_batch(description, num_frames)
    num_cams = len(description.camera_names)
    depth_loss = getattr(model.bev_encoder, 'depth_loss', None)
    for sample in batch['data_samples']:
        if depth_loss is not None:  # 32 x 64 images at the lifted level's stride
            stride = depth_feature_stride(model)
            sample['depth_maps'] = torch.rand(num_cams, 32 // stride, 64 // stride) * 30
        if model.flow_head is not None:
            sample['voxel_flow'] = torch.full((200, 200, 16, 2), 1.5)
        if model.occ_head.losses.use_camera_mask:
            sample['mask_camera'] = torch.rand(description.grid_shape) > 0.3
    return batch


def test_every_config_is_covered():
    names = [os.path.basename(p) for p in CONFIGS]
    assert 'bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py' in names
    assert 'bev_tiny_occ_r50_nuplan.py' in names and len(names) >= 5
    assert 'bevformer-occ-base_r101-dcn-fpn4_8xb1-24e_occ3d-nuscenes.py' in names
    assert {config_dataset(p).name for p in CONFIGS} >= {'openscene', 'occ3d_nuscenes'}


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_config_trains_one_step_and_predicts(path):
    description = config_dataset(path)
    num_cams = len(description.camera_names)
    torch.manual_seed(0)
    model = MODELS.build(shrunk_model_cfg(path))
    model.train()
    losses = model(**model.data_preprocessor(batch_for(model, description), True), mode='loss')
    assert losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    logit_shapes = []  # the head's (B, K, X, Y, Z): K logits per voxel for the dataset's labels
    model.occ_head.register_forward_hook(lambda _, __, out: logit_shapes.append(out.shape))
    with torch.no_grad():
        preds = model(**model.data_preprocessor(described_batch(description, num_frames=1)),
                      mode='predict')
    assert logit_shapes[-1] == (1, model.occ_head.losses.logit_channels(
        description.num_classes), *description.grid_shape)
    assert preds[0]['occ_pred'].shape == description.grid_shape
    assert int(preds[0]['occ_pred'].max()) <= description.free_index
    if model.flow_head is not None:
        assert 'loss_flow' in losses and preds[0]['flow_pred'].shape == (200, 200, 16, 2)
    if getattr(model.bev_encoder, 'depth_loss', None) is not None:
        assert losses['loss_depth'] > 0
        # the expected depth of each feature pixel, for the depth metrics
        stride = depth_feature_stride(model)
        assert preds[0]['depth_pred'].shape == (num_cams, 32 // stride, 64 // stride)
        assert (preds[0]['depth_pred'] > 0).all()


OCC3D_DATA = os.path.join(REPO_ROOT, 'configs', '_base_', 'datasets', 'occ3d_nuscenes.py')
OCC3D_DEPTH = [os.path.join(REPO_ROOT, 'configs', family, name) for family, name in (
    ('flashocc', 'flashocc_r50-fpn_8xb1-24e_occ3d-nuscenes.py'),
    ('fbocc', 'fbocc_r50-fpn_8xb1-24e_occ3d-nuscenes.py'))]


def occ3d_tree(tmp_path):
    """test_occ3d_eval.scene's two Occ3D frames (road, cars, vegetation no camera sees) with
    100x80 images for the 6 cameras and one LiDAR return per frame at lidar (10, 2, 1),
    which lies at ego (-1, 10, 3): pixel (30, 30) of every camera, 10 m deep
    (tests/test_occ3d.py works it by hand). The sweeps are PCD files (the infos name them),
    so the pipelines are tested apart from the nuScenes .pcd.bin reader."""
    infos, gt = scene(tmp_path)
    with open(infos, 'rb') as f:
        content = pickle.load(f)
    for frame in content['infos']:
        frame['lidar_path'] = f"samples/LIDAR_TOP/{frame['token']}.pcd"
        write_pcd(tmp_path / frame['lidar_path'],
                  np.array([[10.0, 2.0, 1.0, 0, 0, 0]], dtype=np.float32))
        for cam in OCC3D_NUSCENES.camera_names:
            path = tmp_path / 'samples' / cam / f"{frame['token']}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((80, 100, 3), 128, dtype=np.uint8))
    with open(infos, 'wb') as f:
        pickle.dump(content, f)
    return infos, gt


def config_dataset_on(path, section, infos, data_root):
    """The dataset of the config's `section` dataloader, over `infos` under `data_root`."""
    cfg = Config.fromfile(path)
    return DATASETS.build(dict(cfg[section].dataset, ann_file=infos, data_root=data_root)), cfg


def test_occ3d_data_config_gives_samples_and_the_occ3d_miou(tmp_path):
    """The Occ3D base config's datasets give 6-camera samples with labels and camera mask, a
    training queue of 4, and its evaluator reports the Occ3D protocol's mIoU as
    `miou_masked`: the hand-worked case of test_occ3d_eval.test_occ3d_miou_by_hand (car 50,
    truck 0, pedestrian 0, road 100, hidden vegetation left out) gives 37.5, and 30 on every
    voxel (`miou`)."""
    infos, gt = occ3d_tree(tmp_path)
    val, cfg = config_dataset_on(OCC3D_DATA, 'val_dataloader', infos, str(tmp_path))
    item = val[1]
    assert item['inputs']['imgs'].shape == (1, 6, 3, 80, 100)
    sample = item['data_samples']
    assert np.array_equal(np.asarray(sample['voxel_semantics']), gt)
    assert not sample['mask_camera'][V3] and sample['mask_camera'].sum() == gt.size - 1
    train, _ = config_dataset_on(OCC3D_DATA, 'train_dataloader', infos, str(tmp_path))
    assert train[1]['inputs']['imgs'].shape == (4, 6, 3, 80, 100)

    metric = METRICS.build(dict(cfg.val_evaluator, print_table=False))
    metric.dataset_meta = val.metainfo
    pred = gt.copy()
    pred[V2], pred[V3], pred[V4] = TRUCK, FREE, PEDESTRIAN
    metric.process(dict(data_samples=[sample]), [dict(token='tok1', occ_pred=pred)])
    summary = metric.compute_metrics(metric.results)
    assert summary['miou_masked'] == pytest.approx(37.5)
    assert summary['miou'] == pytest.approx(30.0)
    per_class = metric.last_summary['per_class_masked']
    assert per_class['car'] == pytest.approx(50.0) and per_class['vegetation'] is None


@pytest.mark.parametrize('path', OCC3D_DEPTH, ids=[os.path.basename(p) for p in OCC3D_DEPTH])
def test_occ3d_depth_configs_put_the_lidar_return_in_its_cell(tmp_path, path):
    """The depth models' pipelines resize to 704x396 and build the depth targets at the
    lifted level's stride 16 over the image padded to 704x416: 26 x 44 cells per camera.
    The return at pixel (30, 30) of the 100x80 image moves to (211.2, 148.5), cell (9, 13),
    10 m, in every camera; in training too, since the random BEV flip moves the point and
    the projection alike."""
    infos, _ = occ3d_tree(tmp_path)
    expected = np.zeros((6, 26, 44), dtype=np.float32)
    expected[:, 9, 13] = 10.0
    for section, num_frames in (('val_dataloader', 1), ('train_dataloader', None)):
        dataset, cfg = config_dataset_on(path, section, infos, str(tmp_path))
        item = dataset[1]
        queue = num_frames or cfg.train_dataloader.dataset.queue_length
        assert item['inputs']['imgs'].shape == (queue, 6, 3, 396, 704)
        np.testing.assert_allclose(item['data_samples']['depth_maps'], expected, atol=1e-4)
