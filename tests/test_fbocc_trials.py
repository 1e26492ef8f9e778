"""benchmarks/fbocc_trials: the variants tried on the forward-backward demo (issue 15). The
Lovasz variants reduce to the published loss and ease as documented; every trial config builds,
and its occupancy losses and depth side are the demo's except where its name says."""
import glob
import os
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import EMAHook

from occnet.models.losses.lovasz_softmax import LovaszSoftmaxLoss
from occnet.registry import MODELS
from script_loader import REPO_ROOT

TRIALS = os.path.join(REPO_ROOT, 'benchmarks', 'fbocc_trials')
sys.path.insert(0, TRIALS)
import checkpoint_parts  # noqa: E402
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


# each trial's occupancy losses as (type, loss weight); the others have the demo's
DEMO_LOSSES = [('OccCrossEntropyLoss', 1.0), ('LovaszSoftmaxLoss', 1.0)]
LOSSES = {
    'ce_only': [('OccCrossEntropyLoss', 1.0)],
    'bevformer420': [('OccCrossEntropyLoss', 1.0)],
    'bevformer420_ema': [('OccCrossEntropyLoss', 1.0)],
    'bevformer420_pretrained': [('OccCrossEntropyLoss', 1.0)],
    'bevformer420_pretrained_semantic': [('OccCrossEntropyLoss', 1.0)],
    'objects': [('OccCrossEntropyLoss', 1.0), ('LovaszSubsetLoss', 1.0)],
    'rare': [('OccCrossEntropyLoss', 1.0), ('LovaszSubsetLoss', 1.0)],
    'scal': DEMO_LOSSES + [('SemanticScalLoss', 1.0), ('GeometryScalLoss', 1.0)],
    'sem_scal': DEMO_LOSSES + [('SemanticScalLoss', 1.0)],
    'geo_scal': DEMO_LOSSES + [('GeometryScalLoss', 1.0)],
}
# each trial's depth side as (residual blocks, bins, depth range in m, depth loss weight)
DEMO_DEPTH = (2, 24, (1.0, 49.0, 2.0), 0.05)
DEPTH = {
    'depth_blocks3': (3, 24, (1.0, 49.0, 2.0), 0.05),
    'depth_bins1m': (2, 48, (1.0, 49.0, 1.0), 0.05),
    'depth_weight01': (2, 24, (1.0, 49.0, 2.0), 0.1),
}
# every trial config in the folder (all .py files but the helpers and the pretraining)
NOT_TRIALS = ('lovasz_variants', 'checkpoint_parts', 'depth_pretrain',
              'depth_semantic_pretrain')
TRIAL_NAMES = sorted(name for name in (os.path.splitext(os.path.basename(path))[0]
                                       for path in glob.glob(os.path.join(TRIALS, '*.py')))
                     if name not in NOT_TRIALS)
# the trials that start from depth_pretrain.py's or depth_semantic_pretrain.py's image side
# (checkpoint_parts.py keep)
PRETRAINED = {'pretrained': 'work_dirs/pretrain/pre_fb.pth',
              'pretrained_image': 'work_dirs/pretrain/pre_img.pth',
              'bevformer420_pretrained': 'work_dirs/pretrain/pre_img.pth',
              'pretrained_semantic': 'work_dirs/pretrain_sem/pre_fb.pth',
              'bevformer420_pretrained_semantic': 'work_dirs/pretrain_sem/pre_img.pth'}
LEARNING_RATE = {'lr_high': 4.5e-3, 'lr_low': 2e-3}  # the others: the demo's 3e-3
EMA = ('ema', 'ema_constant', 'bevformer420_ema')  # the trials that average the weights


@pytest.mark.parametrize('name', TRIAL_NAMES)
def test_trial_configs_build_with_the_demo_settings_but_the_one_they_change(name):
    cfg = Config.fromfile(os.path.join(TRIALS, f'{name}.py'))
    assert cfg.train_cfg.max_iters == 420 and cfg.randomness.seed == 0
    model = MODELS.build(cfg.model)
    losses = model.occ_head.losses.losses
    assert [(type(loss).__name__, loss.loss_weight) for loss in losses] == \
        LOSSES.get(name, DEMO_LOSSES)
    assert losses[0].class_weight.tolist() == pytest.approx(cfg.class_weight)
    subsets = {'objects': [0, 4, 5, 6, 7, 8, 9], 'rare': [4, 5, 6, 7, 8, 9]}
    if name in subsets:
        assert losses[1].subset == subsets[name]
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert ('LovaszWarmDownHook' in hooks) == (name == 'eased')
    ema = [h for h in cfg.custom_hooks if h['type'] == 'EMAHook']
    assert [(h['momentum'], h['update_buffers']) for h in ema] == \
        ([(0.02, False)] if name in EMA else [])
    # the warm-up, then the cosine over all 420 iterations, but a constant rate in ema_constant
    schedule = [(s['type'], s['begin'], s['end']) for s in cfg.param_scheduler]
    assert schedule == [('LinearLR', 0, 50)] + \
        ([] if name == 'ema_constant' else [('CosineAnnealingLR', 0, 420)])
    assert cfg.optim_wrapper.optimizer.lr == LEARNING_RATE.get(name, 3e-3)
    assert cfg.get('load_from') == PRETRAINED.get(name)
    assert cfg.get('allow_partial_checkpoint', False) == (name in PRETRAINED)
    assert cfg.train_dataloader.dataset.data_root == 'work_dirs/dvb/l0/data/'
    if name.startswith('bevformer420'):
        assert type(model.bev_encoder).__name__ == 'BEVFormerEncoder'
        return
    encoder = model.bev_encoder
    assert encoder.depth_aware == (name != 'plain_attention')
    depth_net = encoder.view_transform.depth_net
    assert (len(depth_net.depth_blocks), depth_net.num_bins,
            tuple(encoder.view_transform.depth_range), encoder.depth_loss.loss_weight) == \
        DEPTH.get(name, DEMO_DEPTH)
    # the depth loss bins depth as the lift does, and the bins tile the range
    assert tuple(encoder.depth_loss.depth_range) == tuple(encoder.view_transform.depth_range)
    low, high, step = encoder.view_transform.depth_range
    assert round((high - low) / step) == depth_net.num_bins


def test_raw_part_takes_the_models_own_weights_from_an_ema_checkpoint():
    model = torch.nn.Linear(3, 2)
    runner = SimpleNamespace(model=model)
    hook = EMAHook(momentum=0.02)
    hook.before_run(runner)  # the average starts as a copy of the model
    averaged = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)  # the model moves on; the average stays
    own = {k: v.clone() for k, v in model.state_dict().items()}
    checkpoint = dict(state_dict=model.state_dict())
    hook.before_save_checkpoint(runner, checkpoint)  # what training saves
    assert torch.equal(checkpoint['state_dict']['weight'], averaged['weight'])
    raw = checkpoint_parts.raw_state_dict(checkpoint)
    assert raw.keys() == own.keys()
    assert all(torch.equal(raw[k], own[k]) for k in own)
    with pytest.raises(KeyError, match='not trained with EMAHook'):
        checkpoint_parts.raw_state_dict(dict(state_dict=own))


def test_depth_pretraining_trains_the_depth_side_only_on_another_set():
    cfg = Config.fromfile(os.path.join(TRIALS, 'depth_pretrain.py'))
    assert cfg.train_cfg.max_iters == 840
    assert cfg.train_dataloader.dataset.data_root == 'work_dirs/pretrain/data_s2/'
    assert [s['end'] for s in cfg.param_scheduler] == [50, 840]
    model = MODELS.build(cfg.model)
    assert [(type(loss).__name__, loss.loss_weight)
            for loss in model.occ_head.losses.losses] == [('OccCrossEntropyLoss', 0.0)]
    assert model.bev_encoder.depth_loss.loss_weight == 1.0
    assert model.img_seg_head is None


def test_joint_depth_semantic_pretraining_adds_the_semantic_head_and_its_labels():
    depth_only = Config.fromfile(os.path.join(TRIALS, 'depth_pretrain.py'))
    cfg = Config.fromfile(os.path.join(TRIALS, 'depth_semantic_pretrain.py'))
    assert cfg.train_cfg == depth_only.train_cfg
    assert cfg.train_dataloader.dataset.data_root == 'work_dirs/pretrain/data_s2/'
    targets = [t for t in cfg.train_dataloader.dataset.pipeline
               if t['type'] == 'DepthMapsFromPoints']
    assert len(targets) == 1 and targets[0]['with_semantics']
    model = MODELS.build(cfg.model)
    assert model.bev_encoder.depth_loss.loss_weight == 1.0
    assert [(type(loss).__name__, loss.loss_weight)
            for loss in model.occ_head.losses.losses] == [('OccCrossEntropyLoss', 0.0)]
    head = model.img_seg_head
    assert head.loss_weight == 1.0 and head.level == 0
    # the occupancy demo's class weights, free's dropped
    assert head.class_weight.tolist() == pytest.approx(cfg.class_weight[:11])


def test_keep_part_keeps_the_prefixes_and_refuses_one_that_matches_nothing():
    state = {'img_backbone.stem.0.weight': torch.ones(1), 'img_neck.conv.weight': torch.ones(2),
             'bev_encoder.view_transform.depth_net.fc.weight': torch.ones(3),
             'bev_encoder.bev_queries.weight': torch.ones(4)}
    kept = checkpoint_parts.keep_prefixes(state, ['img_backbone.', 'img_neck.'])
    assert sorted(kept) == ['img_backbone.stem.0.weight', 'img_neck.conv.weight']
    with pytest.raises(ValueError, match="img_bakcbone"):
        checkpoint_parts.keep_prefixes(state, ['img_bakcbone.'])
