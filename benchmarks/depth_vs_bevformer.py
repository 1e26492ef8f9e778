"""Does explicit depth help? The BEVFormer demo, the forward-backward (FB-OCC style) demo and
the FlashOcc-style demo, trained side by side under the same wall-clock budget on a fresh
synthetic set, and tested on its held-out logs.

    python benchmarks/depth_vs_bevformer.py --seed S --work-dir DIR [--budget-s 480]
        [--ablate-depth] [--models bevformer depth flashocc]

1. Generates the demo's synthetic set (8 logs x 32 frames, 320x180, LiDAR) with seed S into
   DIR/data and splits it as the demo does (2 of the 8 logs held out).
2. Times each model's real training iteration: 20-iteration runs of tools/train.py on the
   same data, in TIMING_ROUNDS interleaved rounds (bevformer, depth, flashocc, bevformer,
   ...), so a drift of the machine's speed hits every model alike; the median of the logged
   iteration times after the first half of each run. Each model gets budget / (seconds per
   iteration) iterations with the demo's schedule (linear warm-up, cosine decay to 1%)
   stretched over them, so every model trains for the same time. The training runs then
   report their own median iteration time (`<model>_sec_per_iter_trained`) and the budget
   it implies (`<model>_budget_used_s` = iterations x that time), to check the matching.
   When a model's training ran more than DRIFT (5%) faster or slower than its timing
   rounds, the budget was not what it meant to be (the machine's speed drifts, and a
   model's first iterations can run slower than its later ones): the model is trained and
   tested once more, in DIR/<model>_retrain, for budget /
   (its trained seconds per iteration) iterations, and that result is the one reported;
   the first is kept under `<model>_before_retrain`.
   No run validates during training; the test in step 3 is the evaluation.
3. Trains each (tools/train.py) and tests it on the held-out logs (tools/test.py) with the
   smear measure on (docs/evaluation.md).
4. --ablate-depth adds the forward-backward model without depth supervision (depth_unsup).
   `--models ... bevformer_lovasz` adds the BEVFormer demo trained with the forward-backward
   demo's loss (weighted cross-entropy + Lovasz-softmax).
Each model's result is kept in DIR/results/<name>.json and reused by a later run with the
same data and iterations; delete it to train that model again. The timing runs are kept in
DIR/timing/<name> too: the machine's speed drifts (up to 25% here within a day), so when one
model is timed again, time the others again as well (delete DIR/timing) for a fair budget.

Writes DIR/summary.json; its last printed line is that JSON: `<model>_fg_miou` and
`<model>_miou` on camera-visible voxels (the protocol the demos train with), the same on all
voxels (`_all`), `<model>_smear_share`, `<model>_train_s`, `<model>_iters`, and
`depth_over_bevformer_fg`; `<model>` is bevformer, depth (forward-backward), flashocc and,
with --ablate-depth, depth_unsup. Takes about 4 x (budget + 2 min).
"""
import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
from demo import GENERATE  # noqa: E402  (one definition of the demo's data)

CONFIGS = dict(
    bevformer='configs/bevformer_occ/bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
    depth='configs/fbocc/fbocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
    flashocc='configs/flashocc/flashocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
    depth_unsup='configs/fbocc/fbocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
    bevformer_lovasz='configs/bevformer_occ/'
                     'bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
)
EXTRA = dict(
    depth_unsup='model = dict(bev_encoder=dict(loss_depth=None))\n',
    # the forward-backward demo's occupancy loss on the BEVFormer demo: how much of the
    # forward-backward model's gain the loss alone gives
    bevformer_lovasz="model = dict(occ_head=dict(loss=[\n"
                     "    dict(type='OccCrossEntropyLoss', class_weight={{_base_.class_weight}}),\n"
                     "    dict(type='LovaszSoftmaxLoss')]))\n")
TIMING_ITERS = 20
TIMING_ROUNDS = 2
SMOKE_ITERS = 3
DRIFT = 0.05  # retrain when the trained s/iter is this far (relative) from the timed one

DERIVED = """_base_ = [{base!r}]
data_root = {data_root!r}
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters},
                 val_interval={iters} + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=min(50, {iters})),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=False, begin=0, end={iters},
         T_max={iters}),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval={iters}, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
val_dataloader = None  # no validation inside the budget: tools/test.py evaluates afterwards
val_cfg = None
val_evaluator = None
{extra}"""


def run(args, log=None):
    print('$', ' '.join(args), flush=True)
    with open(log, 'a') if log else open(os.devnull, 'w') as out:
        subprocess.run([sys.executable] + args, cwd=ROOT, check=True,
                       stdout=out if log else None, stderr=subprocess.STDOUT if log else None)


def make_data(data_dir, seed, smoke=False):
    if os.path.isfile(os.path.join(data_dir, 'openscene_mini_train.pkl')):
        return
    generate = list(GENERATE)
    generate[generate.index('--seed') + 1] = str(seed)
    if smoke:  # 4 logs of 4 frames, one held out
        for key, value in (('--num-logs', '4'), ('--frames-per-log', '4'),
                           ('--frames-per-scene', '4')):
            generate[generate.index(key) + 1] = value
    run(['tools/create_synthetic_openscene.py', '--out-dir', data_dir] + generate)
    run(['tools/collect_data.py', '--data-root', data_dir, '--split', 'mini', '--out-dir',
         data_dir, '--val-ratio', '0.25', '--seed', '0'])


def write_config(work_dir, name, data_dir, iters):
    path = os.path.join(work_dir, 'configs', f'{name}_{iters}it.py')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(DERIVED.format(base=os.path.join(ROOT, CONFIGS[name]),
                               data_root=data_dir.rstrip('/') + '/', iters=iters,
                               extra=EXTRA.get(name, '')))
    return path


def logged_iteration_times(run_dir):
    """Seconds of each logged training iteration in the run's vis_data/scalars.json (the
    lines with a loss; validation lines are left out)."""
    times = []
    for path in sorted(glob.glob(os.path.join(run_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if 'time' in entry and 'loss' in entry:
                    times.append(entry['time'])
    return times


def seconds_per_iteration(work_dir, names, data_dir, timing_iters=TIMING_ITERS,
                          rounds=TIMING_ROUNDS):
    """{name: seconds per training iteration}: the median, over TIMING_ROUNDS interleaved
    short runs of each model (DIR/timing/<name>/round<k>), of the logged iteration times in
    the second half of each run. Runs already on disk are read, not rerun."""
    pooled = {name: [] for name in names}
    for k in range(rounds):
        for name in names:
            run_dir = os.path.join(work_dir, 'timing', name, f'round{k}')
            times = logged_iteration_times(run_dir)
            if not times:
                config = write_config(work_dir, name, data_dir, timing_iters)
                # every iteration logged, each its own time (window 1, not a running mean
                # that would carry the slow first iteration)
                run(['tools/train.py', config, '--work-dir', run_dir, '--cfg-options',
                     'default_hooks.logger.interval=1', 'log_processor.window_size=1'],
                    log=os.path.join(work_dir, f'timing_{name}.log'))
                times = logged_iteration_times(run_dir)
            pooled[name] += times[len(times) // 2:]
    return {name: statistics.median(times) for name, times in pooled.items()}


def train_and_test(work_dir, name, data_dir, iters, run_name=None):
    """Train and test one model in DIR/<run_name> (default: the model's name); its result
    is kept in DIR/results/<run_name>.json, and a later run with the same iterations reuses
    it (delete the file to train again)."""
    run_name = run_name or name
    saved = os.path.join(work_dir, 'results', f'{run_name}.json')
    if os.path.isfile(saved):
        with open(saved) as f:
            result = json.load(f)
        if result['iters'] == iters:
            print(f'{run_name}: {json.dumps(result)} (from {saved})', flush=True)
            return result
    run_dir = os.path.join(work_dir, run_name)
    if os.path.isdir(run_dir):  # a stale run would mix its iteration times into this one's
        shutil.rmtree(run_dir)
    config = write_config(work_dir, name, data_dir, iters)
    log = os.path.join(work_dir, f'{run_name}.log')
    start = time.time()
    run(['tools/train.py', config, '--work-dir', run_dir], log=log)
    train_s = time.time() - start
    with open(os.path.join(run_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    run(['tools/test.py', config, checkpoint, '--out-dir', os.path.join(run_dir, 'test'),
         '--work-dir', run_dir, '--cfg-options', 'test_evaluator.smear=True'], log=log)
    with open(os.path.join(run_dir, 'test', 'metrics.json')) as f:
        metrics = json.load(f)
    result = {'fg_miou': metrics['fg_miou_masked'], 'miou': metrics['miou_masked'],
              'fg_miou_all': metrics['fg_miou'], 'miou_all': metrics['miou'],
              'smear_share': metrics['smear_share'],
              'false_object_share': metrics['false_object_share'],
              'train_s': round(train_s), 'iters': iters}
    trained = logged_iteration_times(run_dir)  # means of the 20 before each log line
    if trained:
        result['sec_per_iter_trained'] = round(statistics.median(trained), 3)
        result['budget_used_s'] = round(iters * result['sec_per_iter_trained'])
    for key in ('depth_abs_rel', 'depth_delta1'):
        if metrics.get(key) is not None:
            result[key] = metrics[key]
    os.makedirs(os.path.dirname(saved), exist_ok=True)
    with open(saved, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'{run_name}: {json.dumps(result)}', flush=True)
    return result


def train_within_budget(work_dir, name, data_dir, budget_s, timed_s):
    """train_and_test for budget_s / timed_s iterations; when the training's own seconds
    per iteration differ from timed_s by more than DRIFT, once more for budget_s / (those
    seconds) iterations. Returns the result reported, with the first one under
    'before_retrain' when there was a retrain."""
    iters = max(1, int(budget_s / timed_s))
    result = train_and_test(work_dir, name, data_dir, iters)
    trained_s = result.get('sec_per_iter_trained')
    if not trained_s or abs(trained_s - timed_s) <= DRIFT * timed_s:
        return result
    corrected = max(1, int(budget_s / trained_s))
    print(f'{name}: trained at {trained_s:.3f} s an iteration against {timed_s:.3f} s timed '
          f'({trained_s / timed_s - 1:+.0%}): its {iters} iterations used '
          f'{result.get("budget_used_s")} s of the {budget_s:.0f} s budget; training it '
          f'again for {corrected} iterations', flush=True)
    retrained = train_and_test(work_dir, name, data_dir, corrected, f'{name}_retrain')
    retrained['before_retrain'] = {key: result[key] for key in (
        'iters', 'sec_per_iter_trained', 'budget_used_s', 'fg_miou', 'miou') if key in result}
    return retrained


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seed', type=int, required=True, help="the synthetic set's seed "
                        '(the demo uses 0)')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--budget-s', type=float, default=480.0,
                        help='training seconds each model gets (the BEVFormer demo: about '
                        '480 s of iterations on a 2-core CPU)')
    parser.add_argument('--models', nargs='+', default=['bevformer', 'depth', 'flashocc'],
                        choices=sorted(CONFIGS))
    parser.add_argument('--ablate-depth', action='store_true',
                        help='also train the forward-backward model without depth loss')
    parser.add_argument('--smoke', action='store_true', help='check the whole flow in about '
                        'a minute a model: 4 logs of 4 frames, 3 iterations each')
    args = parser.parse_args()
    work_dir = os.path.abspath(args.work_dir)
    data_dir = os.path.join(work_dir, 'data')
    names = list(dict.fromkeys(args.models + (['depth_unsup'] if args.ablate_depth else [])))
    started = time.time()
    make_data(data_dir, args.seed, args.smoke)
    seconds = seconds_per_iteration(work_dir, names, data_dir,
                                    SMOKE_ITERS if args.smoke else TIMING_ITERS)
    summary = dict(seed=args.seed, budget_s=args.budget_s,
                   sec_per_iter={k: round(v, 3) for k, v in seconds.items()})
    for name in names:
        if args.smoke:
            result = train_and_test(work_dir, name, data_dir, SMOKE_ITERS)
        else:
            result = train_within_budget(work_dir, name, data_dir, args.budget_s,
                                         seconds[name])
        for key, value in result.items():
            summary[f'{name}_{key}'] = value
    if 'bevformer' in names and 'depth' in names and summary['bevformer_fg_miou']:
        summary['depth_over_bevformer_fg'] = round(
            summary['depth_fg_miou'] / summary['bevformer_fg_miou'], 2)
    summary.update(date=time.strftime('%Y-%m-%d'), total_min=round(
        (time.time() - started) / 60, 1), hardware=f'{os.cpu_count()}-core '
        f'{platform.machine()} CPU, no GPU, Python {platform.python_version()}')
    with open(os.path.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary))


if __name__ == '__main__':
    main()
