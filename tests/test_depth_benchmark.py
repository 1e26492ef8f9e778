"""benchmarks/depth_vs_bevformer.py without training: the time-budget configs it writes (the
clock stops the loop and sets the schedule, the seed's data, the training seed of a repeat,
the depth-off ablation), how it reads the runs' logs, and how it averages repeats."""
import json
import os

from mmengine.config import Config
from script_loader import load_script


def load_benchmark():
    return load_script('benchmarks/depth_vs_bevformer.py')


def test_budget_config_trains_for_the_budget_on_the_seeds_data(tmp_path):
    bench = load_benchmark()
    data_dir = str(tmp_path / 'data')
    cfg = Config.fromfile(bench.write_config(str(tmp_path), 'depth_unsup', data_dir, 480.0,
                                             'depth_unsup_r1', train_seed=1))
    assert os.path.basename(cfg.filename) == 'depth_unsup_r1.py'
    # the clock stops the loop, not an iteration count, and sets the learning rate
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=bench.UNBOUNDED,
                                 val_begin=bench.UNBOUNDED + 1,
                                 val_interval=bench.UNBOUNDED + 1)
    # one checkpoint, at the end (none in between to slow the budget)
    assert cfg.default_hooks.checkpoint.interval == bench.UNBOUNDED
    assert cfg.param_scheduler is None
    assert cfg.custom_hooks[-1] == dict(type='TimeBudgetHook', budget_s=480.0,
                                        warmup_iters=50, warmup_start=0.1, eta_min_ratio=0.01)
    # the demo's own hooks stay (checkpoints loadable, the non-finite loss guard)
    assert [h['type'] for h in cfg.custom_hooks[:-1]] == [
        'PlainCheckpointHook', 'NonFiniteLossHook', 'OccupancyVisualizationHook']
    assert cfg.randomness.seed == 1
    # no validation eats into the budget; the test set is still the held-out logs
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.val_evaluator is None
    assert cfg.test_dataloader.dataset.ann_file == 'openscene_mini_val.pkl'
    for loader in ('train_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == data_dir + '/'
    # the ablation is the forward-backward model without its depth loss; the rest unchanged
    assert cfg.model.bev_encoder.type == 'FBOccEncoder'
    assert cfg.model.bev_encoder.loss_depth is None
    depth = Config.fromfile(bench.write_config(str(tmp_path), 'depth', data_dir, 4.0,
                                               max_iters=5))
    assert depth.model.bev_encoder.loss_depth.type == 'DepthBinLoss'
    assert (depth.train_cfg.max_iters, depth.randomness.seed) == (5, 0)
    # the demo's Lovasz weight is FB-OCC's default 1.0; the variant halves it, nothing else
    half = Config.fromfile(bench.write_config(str(tmp_path), 'depth_lovasz05', data_dir, 4.0))
    assert [loss.type for loss in half.model.occ_head.loss] == [
        loss.type for loss in depth.model.occ_head.loss]
    assert [loss.get('loss_weight') for loss in depth.model.occ_head.loss] == [None, None]
    assert [loss.get('loss_weight') for loss in half.model.occ_head.loss] == [None, 0.5]
    assert (half.model.occ_head.loss[0].class_weight
            == depth.model.occ_head.loss[0].class_weight)
    assert half.model.bev_encoder == depth.model.bev_encoder


def test_budget_spent_is_read_from_the_hooks_closing_line(tmp_path):
    bench = load_benchmark()
    log = tmp_path / 'run' / '20261204_000000' / '20261204_000000.log'
    log.parent.mkdir(parents=True)
    log.write_text('12/04 - INFO - time budget of 480 s spent: stopping after iteration 611\n'
                   '12/04 - INFO - time budget: 480.7 s of 480 s in 611 iterations\n')
    assert bench.budget_spent(str(tmp_path / 'run')) == (611, 480.7)
    assert bench.budget_spent(str(tmp_path / 'none')) is None


def test_repeats_are_averaged_and_paired(tmp_path):
    """Two repeats: each number's mean, each run's foreground mIoU, the ratio of the means
    and the ratio repeat by repeat."""
    bench = load_benchmark()
    results = dict(
        bevformer=[dict(fg_miou=2.0, miou=10.0, iters=600, train_seed=0),
                   dict(fg_miou=1.0, miou=9.0, iters=620, train_seed=1)],
        depth=[dict(fg_miou=3.0, miou=11.0, iters=500, train_seed=0),
               dict(fg_miou=2.4, miou=11.0, iters=480, train_seed=1)])
    summary = bench.summarise(results)
    assert summary['bevformer_fg_miou'] == 1.5 and summary['depth_fg_miou'] == 2.7
    assert summary['bevformer_iters'] == 610 and summary['depth_miou'] == 11.0
    assert 'bevformer_train_seed' not in summary  # a setting, not averaged
    assert summary['depth_fg_miou_runs'] == [3.0, 2.4]
    assert summary['depth_over_bevformer_fg'] == 1.8  # 2.7 / 1.5
    assert summary['depth_over_bevformer_fg_runs'] == [1.5, 2.4]
    assert summary['depth_runs'] == results['depth']
    # one repeat: that run's values as they are
    one = bench.summarise(dict(bevformer=results['bevformer'][:1], depth=results['depth'][:1]))
    assert one['depth_iters'] == 500 and one['depth_over_bevformer_fg'] == 1.5
    assert 'depth_fg_miou_runs' not in one


def test_iteration_times_come_from_the_runs_scalars(tmp_path):
    bench = load_benchmark()
    scalars = tmp_path / 'run' / '20261202_000000' / 'vis_data' / 'scalars.json'
    scalars.parent.mkdir(parents=True)
    lines = [dict(lr=0.1, loss=1.0, time=t, iter=i)
             for i, t in enumerate([3.0, 1.0, 1.2, 0.9], 1)]
    # a validation line has a time too, but no loss: it is not a training iteration
    scalars.write_text('\n'.join(json.dumps(line) for line in
                                 lines + [dict(miou=5.0, time=0.3)]))
    assert bench.logged_iteration_times(str(tmp_path / 'run')) == [3.0, 1.0, 1.2, 0.9]
