"""benchmarks/depth_vs_bevformer.py without training: the budget-matched configs it writes
(iteration loop, schedule stretched over the iterations, the seed's data, the depth-off
ablation) and how it reads the logged iteration times."""
import importlib.util
import json
import os

from mmengine.config import Config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_benchmark():
    path = os.path.join(REPO_ROOT, 'benchmarks', 'depth_vs_bevformer.py')
    spec = importlib.util.spec_from_file_location('depth_vs_bevformer', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_budget_config_runs_the_given_iterations_on_the_seeds_data(tmp_path):
    bench = load_benchmark()
    data_dir = str(tmp_path / 'data')
    cfg = Config.fromfile(bench.write_config(str(tmp_path), 'depth_unsup', data_dir, 37))
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=37, val_interval=38)
    # no validation eats into the budget; the test set is still the held-out logs
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.val_evaluator is None
    assert cfg.test_dataloader.dataset.ann_file == 'openscene_mini_val.pkl'
    warmup, cosine = cfg.param_scheduler
    assert (warmup.by_epoch, warmup.end) == (False, 37)
    assert (cosine.type, cosine.by_epoch, cosine.end, cosine.T_max) == \
        ('CosineAnnealingLR', False, 37, 37)
    assert cfg.default_hooks.checkpoint.interval == 37
    for loader in ('train_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == data_dir + '/'
    # the ablation is the forward-backward model without its depth loss; the rest unchanged
    assert cfg.model.bev_encoder.type == 'FBOccEncoder'
    assert cfg.model.bev_encoder.loss_depth is None
    depth = Config.fromfile(bench.write_config(str(tmp_path), 'depth', data_dir, 500))
    assert depth.model.bev_encoder.loss_depth.type == 'DepthBinLoss'
    assert depth.param_scheduler[0].end == 50  # the demo's 50-iteration warm-up


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


def test_timing_pools_the_second_halves_of_interleaved_rounds(tmp_path, monkeypatch):
    """Timing runs already on disk are read, not rerun; each model's time is the median of
    the second halves of its rounds pooled; the rounds run interleaved (a, b, a, b)."""
    bench = load_benchmark()
    order = []

    def fake_run(args, log=None):  # the timing runs, logged as tools/train.py would
        run_dir = args[args.index('--work-dir') + 1]
        name, round_dir = run_dir.split(os.sep)[-2:]
        order.append((name, round_dir))
        times = {'a': [9.0, 9.0, 1.0, 2.0], 'b': [9.0, 9.0, 3.0, 3.0]}[name]
        if round_dir == 'round1':
            times = [t + 1 for t in times]
        path = os.path.join(run_dir, '20261202_000000', 'vis_data', 'scalars.json')
        os.makedirs(os.path.dirname(path))
        with open(path, 'w') as f:
            f.write('\n'.join(json.dumps(dict(loss=1.0, time=t)) for t in times))

    monkeypatch.setattr(bench, 'run', fake_run)
    monkeypatch.setattr(bench, 'write_config', lambda *args: 'cfg.py')
    seconds = bench.seconds_per_iteration(str(tmp_path), ['a', 'b'], None, rounds=2)
    assert order == [('a', 'round0'), ('b', 'round0'), ('a', 'round1'), ('b', 'round1')]
    assert seconds == {'a': 2.0, 'b': 3.5}  # medians of [1, 2, 2, 3] and [3, 3, 4, 4]
    order.clear()
    assert bench.seconds_per_iteration(str(tmp_path), ['a', 'b'], None, rounds=2) == seconds
    assert order == []  # read from disk


def test_a_run_whose_speed_drifted_is_trained_again_for_its_own_speed(tmp_path, monkeypatch):
    """Timed at 1.0 s an iteration, a 480 s budget gives 480 iterations. A training that ran
    at 0.75 s (25% off, past DRIFT) used 360 s, so the model is trained again, in its own
    run, for 480 / 0.75 = 640 iterations; within DRIFT the first result stands."""
    bench = load_benchmark()
    speeds = {'m': 0.75, 'm_retrain': 0.78}
    calls = []

    def fake_train_and_test(work_dir, name, data_dir, iters, run_name=None):
        run_name = run_name or name
        calls.append((run_name, iters))
        return dict(iters=iters, sec_per_iter_trained=speeds[run_name], fg_miou=iters / 100,
                    miou=10.0, budget_used_s=round(iters * speeds[run_name]))

    monkeypatch.setattr(bench, 'train_and_test', fake_train_and_test)
    result = bench.train_within_budget(str(tmp_path), 'm', None, 480.0, 1.0)
    assert calls == [('m', 480), ('m_retrain', 640)]
    assert (result['iters'], result['fg_miou'], result['budget_used_s']) == (640, 6.4, 499)
    assert result['before_retrain'] == dict(iters=480, sec_per_iter_trained=0.75,
                                            budget_used_s=360, fg_miou=4.8, miou=10.0)
    calls.clear()
    speeds['m'] = 1.04  # 4% slower than timed: within DRIFT, no retrain
    result = bench.train_within_budget(str(tmp_path), 'm', None, 480.0, 1.0)
    assert calls == [('m', 480)] and 'before_retrain' not in result
