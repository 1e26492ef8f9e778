"""ImageSemanticHead, the semantic half of a joint depth-semantic pretraining: its loss is the
class-weighted cross-entropy worked by hand over the labelled cells only, every feature pixel
of its level (and no other level) gets gradient, the loss stays fp32 under autocast, and the
pretraining config trains it from synthetic LiDAR labels."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from occnet.models.occ_heads.image_semantic_head import ImageSemanticHead
from occnet.registry import DATASETS, MODELS

from conftest import make_lidar_root
from script_loader import REPO_ROOT
from test_configs import shrunk_model_cfg

IGNORE = 255
PRETRAIN = os.path.join(REPO_ROOT, 'benchmarks', 'fbocc_trials', 'depth_semantic_pretrain.py')


def test_loss_is_the_weighted_cross_entropy_of_the_labelled_cells():
    torch.manual_seed(0)
    weight = torch.arange(1, 12, dtype=torch.float32)
    head = ImageSemanticHead(in_channels=4, class_weight=weight.tolist(), loss_weight=0.5)
    logits = torch.randn(2, 11, 3, 4)
    target = torch.full((2, 3, 4), IGNORE, dtype=torch.uint8)
    cells = [(0, 0, 0, 4), (0, 2, 3, 10), (1, 1, 1, 0), (1, 2, 0, 4)]  # (image, row, col, class)
    for b, i, j, k in cells:
        target[b, i, j] = k
    # by hand: -sum w_k log softmax_k / sum w_k over the four labelled cells
    nll = [-F.log_softmax(logits[b, :, i, j], 0)[k] * weight[k] for b, i, j, k in cells]
    expected = 0.5 * torch.stack(nll).sum() / sum(weight[k] for *_, k in cells)
    assert head.loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    # a cell with no label changes nothing
    logits2 = logits.clone()
    logits2[0, 3, 1, 1] += 100
    assert head.loss(logits2, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_no_labelled_cell_gives_zero_with_a_graph_and_bad_shapes_are_named():
    head = ImageSemanticHead(in_channels=4)
    logits = torch.randn(1, 11, 2, 2, requires_grad=True)
    loss = head.loss(logits, torch.full((1, 2, 2), IGNORE, dtype=torch.uint8))
    assert loss.item() == 0.0
    loss.backward()
    with pytest.raises(ValueError, match=r"semantic_maps are \(3, 2\).*level 0 has \(2, 2\)"):
        head.loss(logits, torch.zeros(1, 3, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match='class_weight has 12 values.*0..10'):
        ImageSemanticHead(in_channels=4, class_weight=[1.0] * 12)


def test_every_pixel_of_its_level_gets_gradient_and_no_other_level_does():
    torch.manual_seed(0)
    head = ImageSemanticHead(in_channels=8, mid_channels=8, level=1)
    feats = [torch.randn(1, 2, 8, 10, 12, requires_grad=True),
             torch.randn(1, 2, 8, 5, 6, requires_grad=True)]
    logits = head(feats)
    assert logits.shape == (2, 11, 5, 6)
    target = torch.randint(0, 11, (2, 5, 6), dtype=torch.uint8)
    head.loss(logits, target).backward()
    assert feats[0].grad is None
    assert (feats[1].grad.abs().sum(2) > 0).all()  # every camera's every pixel


def test_the_loss_is_fp32_under_autocast():
    head = ImageSemanticHead(in_channels=4)
    feats = [torch.randn(1, 1, 4, 3, 3)]
    target = torch.randint(0, 11, (1, 3, 3), dtype=torch.uint8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = head(feats)
        loss = head.loss(logits, target)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32


@pytest.fixture(scope='module')
def lidar_root(tmp_path_factory):
    """1 log x 2 frames, 80x45 images, lidar sweeps, collected into infos."""
    return make_lidar_root(tmp_path_factory, 'semantic-root', (80, 45), seed=4)


def test_the_pretraining_config_trains_the_semantic_head_from_lidar_labels(lidar_root):
    cfg = Config.fromfile(PRETRAIN)
    assert cfg.train_cfg.max_iters == 840  # depth_pretrain.py's, on its seed-2 set
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.update(data_root=str(lidar_root), ann_file=str(lidar_root / 'infos.pkl'))
    item = DATASETS.build(dataset_cfg)[1]
    sample = item['data_samples']
    sem = sample['semantic_maps'].numpy()
    labelled = sem != IGNORE
    # 80x45 -> 64x36, padded to 64x64, stride 8: 8x8 cells per camera; every label a class
    assert sem.shape == (8, 8, 8) and labelled.sum() > 20
    assert set(np.unique(sem[labelled])) <= set(range(11))
    assert (sample['depth_maps'].numpy()[labelled] > 0).all()  # a label only where a return is

    model_cfg = shrunk_model_cfg(PRETRAIN)
    model_cfg.img_seg_head.in_channels = 16
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.train()
    batch = model.data_preprocessor(dict(inputs=dict(imgs=[item['inputs']['imgs']]),
                                         data_samples=[sample]), True)
    losses = model(**batch, mode='loss')
    assert losses['loss_img_seg'] > 0 and torch.isfinite(losses['loss_img_seg'])
    losses['loss_img_seg'].backward()  # the semantic loss alone reaches the backbone
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.img_backbone.parameters())
    del sample['semantic_maps']
    with pytest.raises(ValueError, match='semantic_maps.*with_semantics=True'):
        model(**batch | dict(data_samples=[sample]), mode='loss')
