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
    lines = [dict(lr=0.1, time=t, iter=i) for i, t in enumerate([3.0, 1.0, 1.2, 0.9], 1)]
    scalars.write_text('\n'.join(json.dumps(line) for line in lines + [dict(miou=5.0)]))
    assert bench.logged_iteration_times(str(tmp_path / 'run')) == [3.0, 1.0, 1.2, 0.9]
    # a timing run already on disk is read, not rerun: the median of its second half
    timing = tmp_path / 'timing' / 'depth' / '20261202_000000' / 'vis_data'
    timing.mkdir(parents=True)
    (timing / 'scalars.json').write_text('\n'.join(json.dumps(dict(time=t)) for t in
                                                   [5.0, 4.0, 1.0, 1.1, 0.9, 1.3]))
    assert bench.seconds_per_iteration(str(tmp_path), 'depth', None) == 1.1
