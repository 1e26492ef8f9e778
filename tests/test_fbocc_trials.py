"""benchmarks/fbocc_trials: the variants tried on the forward-backward demo (issue 15). The
Lovasz variants reduce to the published loss and ease as documented; every trial config builds
with the one change it names."""
import os
import sys

import pytest
import torch
from mmengine.config import Config

from occnet.models.losses.lovasz_softmax import LovaszSoftmaxLoss
from occnet.registry import MODELS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIALS = os.path.join(REPO_ROOT, 'benchmarks', 'fbocc_trials')
sys.path.insert(0, TRIALS)
import lovasz_variants  # noqa: E402


def test_subset_of_every_class_is_the_published_loss_and_a_subset_drops_rows():
    torch.manual_seed(0)
    logits = torch.randn(1, 12, 10, 10, 4)
    target = torch.randint(0, 12, (1, 10, 10, 4))
    target[0, 0] = 255  # ignored
    full = LovaszSoftmaxLoss()(logits, target)
    assert lovasz_variants.LovaszSubsetLoss(subset=range(12))(logits, target) == \
        pytest.approx(full.item(), rel=1e-6)
    # one class row alone: the per-class loss of the published loss restricted to it
    only = lovasz_variants.LovaszSubsetLoss(subset=(3,))(logits, target)
    keep = target.reshape(-1) != 255
    probs = logits.permute(0, 2, 3, 4, 1).reshape(-1, 12)[keep].softmax(1)
    labels = target.reshape(-1)[keep]
    fg = (labels == 3).float()
    errors = (fg - probs[:, 3]).abs()
    order = errors.argsort(descending=True)
    gts = fg[order]
    jaccard = 1 - (gts.sum() - gts.cumsum(0)) / (gts.sum() + (1 - gts).cumsum(0))
    grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    assert only.item() == pytest.approx((errors[order] * grad).sum().item(), rel=1e-5)
    # absent classes have no row; nothing left gives 0 with a gradient path
    target_absent = torch.zeros_like(target)
    none = lovasz_variants.LovaszSubsetLoss(subset=(5,))(logits.requires_grad_(), target_absent)
    assert none.item() == 0.0 and none.requires_grad


def test_eased_weight_runs_from_one_to_final_along_a_half_cosine():
    assert lovasz_variants.eased_weight(0, 420, 0.1) == pytest.approx(1.0)
    assert lovasz_variants.eased_weight(210, 420, 0.1) == pytest.approx(0.55)
    assert lovasz_variants.eased_weight(420, 420, 0.1) == pytest.approx(0.1)


@pytest.mark.parametrize('name', ['fixed420', 'bevformer420', 'ce_only', 'eased', 'objects',
                                  'rare', 'scal', 'sem_scal', 'geo_scal'])
def test_trial_configs_build(name):
    cfg = Config.fromfile(os.path.join(TRIALS, f'{name}.py'))
    assert cfg.train_cfg.max_iters == 420 and cfg.randomness.seed == 0
    model = MODELS.build(cfg.model)
    losses = [type(loss).__name__ for loss in model.occ_head.losses.losses]
    expected = {'ce_only': ['OccCrossEntropyLoss'],
                'bevformer420': ['OccCrossEntropyLoss'],
                'objects': ['OccCrossEntropyLoss', 'LovaszSubsetLoss'],
                'rare': ['OccCrossEntropyLoss', 'LovaszSubsetLoss'],
                'scal': ['OccCrossEntropyLoss', 'LovaszSoftmaxLoss', 'SemanticScalLoss',
                         'GeometryScalLoss'],
                'sem_scal': ['OccCrossEntropyLoss', 'LovaszSoftmaxLoss', 'SemanticScalLoss'],
                'geo_scal': ['OccCrossEntropyLoss', 'LovaszSoftmaxLoss', 'GeometryScalLoss'],
                }.get(
                    name, ['OccCrossEntropyLoss', 'LovaszSoftmaxLoss'])
    assert losses == expected
    subsets = {'objects': [0, 4, 5, 6, 7, 8, 9], 'rare': [4, 5, 6, 7, 8, 9]}
    if name in subsets:
        assert model.occ_head.losses.losses[1].subset == subsets[name]
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert ('LovaszWarmDownHook' in hooks) == (name == 'eased')


@pytest.mark.parametrize('name, blocks, bins, step, depth_weight', [
    ('fixed420', 2, 24, 2.0, 0.05),
    ('depth_blocks3', 3, 24, 2.0, 0.05),
    ('depth_bins1m', 2, 48, 1.0, 0.05),
    ('depth_weight01', 2, 24, 2.0, 0.1)])
def test_depth_trials_change_one_setting_everywhere_it_is_used(name, blocks, bins, step,
                                                                depth_weight):
    cfg = Config.fromfile(os.path.join(TRIALS, f'{name}.py'))
    encoder = MODELS.build(cfg.model).bev_encoder
    depth_net = encoder.view_transform.depth_net
    assert len(depth_net.depth_blocks) == blocks and depth_net.num_bins == bins
    # the lift, the depth-aware weights and the loss all bin depth the same way
    assert tuple(encoder.view_transform.depth_range) == (1.0, 49.0, step)
    assert tuple(encoder.depth_range) == (1.0, 49.0, step)
    assert tuple(encoder.depth_loss.depth_range) == (1.0, 49.0, step)
    assert encoder.depth_loss.loss_weight == depth_weight
    assert (49.0 - 1.0) / step == bins
