"""TimeBudgetHook: training for a wall-clock budget, the schedule laid over the time spent
(occnet/engine/time_budget.py). A fake clock makes every number exact."""
import math
import os

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

from occnet.engine.hooks import PlainCheckpointHook
from occnet.engine.time_budget import (UNBOUNDED_ITERS, TimeBudgetHook, apply_time_budget,
                                      budget_lr_factor, schedule_from_config)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = 'configs/fbocc/fbocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py'


def test_schedule_is_warmup_times_cosine_over_the_budget():
    # warm-up from 0.1 to 1 over 50 iterations, at the start of the cosine
    assert budget_lr_factor(0.0, 0) == pytest.approx(0.1)
    assert budget_lr_factor(0.0, 25) == pytest.approx(0.55)
    # after the warm-up: cosine from 1 to 0.01 over the budget
    assert budget_lr_factor(0.0, 50) == pytest.approx(1.0)
    assert budget_lr_factor(0.5, 80) == pytest.approx(0.01 + 0.99 * 0.5)
    assert budget_lr_factor(0.25, 80) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.sqrt(0.5)))
    assert budget_lr_factor(1.0, 80) == pytest.approx(0.01)
    assert budget_lr_factor(1.7, 80) == pytest.approx(0.01)  # past the budget: the floor
    # both at once multiply, as mmengine's chained LinearLR and CosineAnnealingLR do
    assert budget_lr_factor(0.5, 10) == pytest.approx(0.505 * 0.28)


class Clock:
    """Seconds that advance only when the test says so."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        return dict(loss=self.linear(x).pow(2).mean())


class TickingHook(TimeBudgetHook):
    """Each training iteration takes 1.5 s of the fake clock; records the rate it ran with."""

    def __init__(self, clock, **kwargs):
        super().__init__(clock=clock, **kwargs)
        self.fake, self.lrs, self.totals = clock, [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.lrs.append(runner.optim_wrapper.optimizer.param_groups[0]['lr'])
        self.fake.now += 1.5
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        self.totals.append(runner.max_iters)


def toy_runner(work_dir, hook, **kwargs):
    data = [dict(x=torch.ones(2)) for _ in range(4)]
    loader = dict(dataset=data, sampler=dict(type='InfiniteSampler', shuffle=False),
                  batch_size=1, collate_fn=dict(type='default_collate'))
    return Runner(
        model=Toy(), work_dir=str(work_dir), train_dataloader=loader,
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=10 ** 9, val_interval=10 ** 9),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.2)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                           interval=10 ** 9, save_last=True),
                           logger=dict(type='LoggerHook', interval=1)),
        # PlainCheckpointHook: checkpoints that torch.load(weights_only=True) reads back
        custom_hooks=[PlainCheckpointHook(), hook], default_scope='mmengine', **kwargs)


def test_training_stops_at_the_budget_and_saves_the_last_iteration(tmp_path):
    """Budget 5 s at 1.5 s an iteration: after iterations 1-3 the clock reads 1.5, 3, 4.5 s;
    after iteration 4 it reads 6 s >= 5, so iteration 4 is the last and is checkpointed.
    Each iteration's rate is 0.2 x the schedule at the time spent before it (warm-up over 2
    iterations here)."""
    clock = Clock()
    hook = TickingHook(clock, budget_s=5.0, warmup_iters=2, warmup_start=0.5)
    runner = toy_runner(tmp_path, hook)
    runner.train()
    assert runner.iter == 4
    expected = [0.2 * budget_lr_factor(t / 5.0, i, warmup_iters=2, warmup_start=0.5)
                for i, t in enumerate([0.0, 1.5, 3.0, 4.5])]
    assert hook.lrs == pytest.approx(expected)
    assert expected[0] == pytest.approx(0.1)  # warm-up start, before any time is spent
    # the log (RuntimeInfoHook, before each iteration) shows the rate the iteration ran with
    logged = runner.message_hub.get_scalar('train/lr').data[0]
    assert list(logged) == pytest.approx(expected)
    assert os.path.isfile(tmp_path / 'iter_4.pth')
    # the log's total: the iterations the time left allows (3.5 s / 1.5 s -> 3 more after
    # iteration 1, and so on), then the real end
    assert hook.totals == [4, 4, 4, 4]
    assert runner.message_hub.get_info('time_budget_elapsed_s') == pytest.approx(6.0)
    # a resumed run continues the budget it had spent: 6 s of a 9 s budget leave 2 more
    clock2 = Clock()
    hook2 = TickingHook(clock2, budget_s=9.0, warmup_iters=2, warmup_start=0.5)
    resumed = toy_runner(tmp_path / 'resumed', hook2, load_from=str(tmp_path / 'iter_4.pth'),
                         resume=True)
    resumed.train()
    assert resumed.iter == 6
    assert hook2.lrs == pytest.approx([0.2 * budget_lr_factor(t / 9.0, i, warmup_iters=2,
                                                              warmup_start=0.5)
                                       for i, t in ((4, 6.0), (5, 7.5))])
    # resumed after its budget was spent, a run trains nothing more
    spent = TickingHook(Clock(), budget_s=5.0)
    again = toy_runner(tmp_path / 'again', spent, load_from=str(tmp_path / 'iter_4.pth'),
                       resume=True)
    again.train()
    assert again.iter == 4 and spent.lrs == []


def test_the_configs_max_iters_still_ends_a_run_first(tmp_path):
    hook = TickingHook(Clock(), budget_s=100.0)
    runner = toy_runner(tmp_path, hook)
    runner.train_loop._max_iters = 3
    runner.train()
    assert runner.iter == 3 and hook.totals == [3, 3, 3]
    assert os.path.isfile(tmp_path / 'iter_3.pth')


def test_a_config_with_its_own_schedule_is_refused(tmp_path):
    runner = toy_runner(tmp_path, TimeBudgetHook(budget_s=5.0),
                        param_scheduler=dict(type='ConstantLR', factor=1.0))
    with pytest.raises(ValueError, match='param_scheduler = None'):
        runner.train()


def test_a_budget_must_be_positive():
    with pytest.raises(ValueError, match='budget_s must be > 0'):
        TimeBudgetHook(budget_s=0)


def test_the_demo_config_becomes_a_budgeted_run_with_its_own_schedule():
    from mmengine.config import Config
    cfg = Config.fromfile(os.path.join(REPO_ROOT, DEMO))
    # the demo: LinearLR from 0.1 over 50 iterations, cosine to 1% over the epochs
    hooks_before = [h['type'] for h in cfg.custom_hooks]
    hook = apply_time_budget(cfg, 480)
    assert hook == dict(type='TimeBudgetHook', budget_s=480.0, warmup_iters=50,
                        warmup_start=0.1, eta_min_ratio=0.01)
    assert cfg.custom_hooks[-1] == hook
    assert [h['type'] for h in cfg.custom_hooks[:-1]] == hooks_before
    assert cfg.param_scheduler is None
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == UNBOUNDED_ITERS
    assert cfg.train_cfg.val_begin > UNBOUNDED_ITERS  # no validation inside the budget
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.val_evaluator is None
    assert cfg.test_dataloader.dataset.ann_file.endswith('_val.pkl')  # tools/test.py still
    # the log counts iterations against the hook's estimated total, not a dataloader epoch
    assert cfg.log_processor.by_epoch is False and cfg.log_processor.window_size == 20
    checkpoint = cfg.default_hooks.checkpoint
    assert (checkpoint.by_epoch, checkpoint.interval) == (False, 500)
    # applied twice (a derived config that already has one): still one hook, the new budget
    apply_time_budget(cfg, 60)
    assert [h['type'] for h in cfg.custom_hooks].count('TimeBudgetHook') == 1
    assert cfg.custom_hooks[-1]['budget_s'] == 60.0


def test_schedules_laid_over_the_clock():
    assert schedule_from_config(None) == (0, 1.0, 1.0)  # constant rate
    warmup = dict(type='LinearLR', start_factor=0.25, by_epoch=False, begin=0, end=200)
    assert schedule_from_config([warmup]) == (200, 0.25, 1.0)
    assert schedule_from_config(dict(type='CosineAnnealingLR', T_max=3)) == (0, 1.0, 0.0)
    # an absolute floor becomes a ratio of the optimizer's rate
    floor = dict(type='CosineAnnealingLR', T_max=3, eta_min=2e-6)
    assert schedule_from_config([warmup, floor], base_lr=2e-4) == (200, 0.25, pytest.approx(0.01))
    with pytest.raises(ValueError, match="optimizer's lr"):
        schedule_from_config([floor])
    with pytest.raises(ValueError, match='MultiStepLR'):
        schedule_from_config([dict(type='MultiStepLR', milestones=[2])])
    with pytest.raises(ValueError, match='by_epoch=False'):
        schedule_from_config([dict(type='LinearLR', start_factor=0.1, end=1)])
    # what the clock cannot reproduce is refused, not laid over the budget wrongly
    with pytest.raises(ValueError, match='begin=50'):  # a cosine that starts late
        schedule_from_config([dict(type='CosineAnnealingLR', begin=50, end=500, T_max=450)])
    with pytest.raises(ValueError, match='T_max=2 and end=3'):  # one that ends early
        schedule_from_config([dict(type='CosineAnnealingLR', T_max=2, end=3)])
    with pytest.raises(ValueError, match='decay'):  # LinearLR as a decay
        schedule_from_config([dict(type='LinearLR', by_epoch=False, end=9, end_factor=0.1)])
    with pytest.raises(ValueError, match='keep one'):
        schedule_from_config([dict(type='CosineAnnealingLR', eta_min=1e-6, eta_min_ratio=0.1)])
    from mmengine.optim import CosineAnnealingLR
    assert schedule_from_config([dict(type=CosineAnnealingLR, eta_min_ratio=0.05)]) == (
        0, 1.0, 0.05)  # a class, not a name


def test_train_cli_names_the_config_on_a_bad_budget():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, 'tools/train.py', DEMO, '--time-budget', '0',
                           '--work-dir', '/tmp/occnet-never-written'], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert DEMO in done.stderr and 'budget_s must be > 0' in done.stderr


def test_every_config_can_train_to_a_budget():
    import glob
    from mmengine.config import Config
    paths = sorted(p for p in glob.glob(os.path.join(REPO_ROOT, 'configs', '*', '*.py'))
                   if os.sep + '_base_' + os.sep not in p)
    assert len(paths) >= 5
    for path in paths:
        cfg = Config.fromfile(path)
        schedule = [dict(s) for s in cfg.param_scheduler]
        hook = apply_time_budget(cfg, 3600)
        # every config warms up over iterations and decays by a cosine to a floor ratio
        warmup = next(s for s in schedule if s['type'] == 'LinearLR')
        cosine = next(s for s in schedule if s['type'] == 'CosineAnnealingLR')
        assert (hook['warmup_iters'], hook['warmup_start']) == (
            warmup['end'], warmup['start_factor']), path
        assert hook['eta_min_ratio'] == cosine['eta_min_ratio'], path
        assert cfg.param_scheduler is None and cfg.custom_hooks[-1] == hook, path
