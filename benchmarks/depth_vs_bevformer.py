"""Does explicit depth help? The BEVFormer demo, the forward-backward (FB-OCC style) demo and
the FlashOcc-style demo, trained side by side under the same wall-clock budget on a fresh
synthetic set, and tested on its held-out logs.

    python benchmarks/depth_vs_bevformer.py --seed S --work-dir DIR [--budget-s 480]
        [--repeats R] [--ablate-depth] [--models bevformer depth flashocc]

1. Generates the demo's synthetic set (8 logs x 32 frames, 320x180, LiDAR) with seed S into
   DIR/data and splits it as the demo does (2 of the 8 logs held out).
2. Trains each model (tools/train.py) for budget seconds of wall clock, not a number of
   iterations: TimeBudgetHook (occnet/engine/time_budget.py) stops the loop when the budget
   is spent and sets the learning rate from the time spent: the model config's own schedule
   (apply_time_budget, as `tools/train.py --time-budget`; the demos: a 50-iteration linear
   warm-up, cosine decay to 1%) laid over the budget. So every model gets the same
   training time whatever its speed and the machine's drift, and its schedule ends at the
   budget. `<model>_iters` is how many iterations that was, `<model>_train_s` the seconds the
   hook counted. No run validates during training; the test in step 3 is the evaluation.
3. Tests each on the held-out logs (tools/test.py) with the smear measure on
   (docs/evaluation.md).
4. --repeats R trains every model R times, round-robin (bevformer, depth, ..., bevformer,
   depth, ...), repeat k with training seed k (`randomness.seed`; repeat 0 is the demo's
   seed 0) in DIR/<model> (k = 0) or DIR/<model>_r<k>. The summary gives each repeat's
   numbers, their mean and range, and the ratio of the mean foreground mIoUs. One run is
   noisy at this scale: the training seed and the machine's speed during the budget move a
   model's foreground mIoU by 10-30%.
5. --ablate-depth adds the forward-backward model without depth supervision (depth_unsup).
   `--models ... bevformer_lovasz` adds the BEVFormer demo trained with the forward-backward
   demo's loss (weighted cross-entropy + Lovasz-softmax).
Each run's result is kept in DIR/results/<run>.json and reused by a later call with the same
budget and training seed; delete it to train that run again.

Writes DIR/summary.json; its last printed line is that JSON: `<model>_fg_miou` and
`<model>_miou` on camera-visible voxels (the protocol the demos train with; with repeats,
the mean over them, and `<model>_fg_miou_runs` each run's), the same on all voxels (`_all`),
`<model>_smear_share`, `<model>_train_s`, `<model>_iters`, and `depth_over_bevformer_fg`
(the ratio of the means); `<model>` is bevformer, depth (forward-backward), flashocc and,
with --ablate-depth, depth_unsup. Takes about repeats x models x (budget + 2 min).
"""
import argparse
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
from demo import GENERATE  # noqa: E402  (one definition of the demo's data)
from mmengine.config import Config  # noqa: E402
from occnet.engine.time_budget import (  # noqa: E402
    UNBOUNDED_ITERS as UNBOUNDED,  # the loop's max_iters when the time budget alone stops it
    apply_time_budget)

CONFIGS = dict(
    bevformer='configs/bevformer_occ/bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
    depth='configs/fbocc/fbocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
    flashocc='configs/flashocc/flashocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
    depth_unsup='configs/fbocc/fbocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
    bevformer_lovasz='configs/bevformer_occ/'
                     'bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
    depth_lovasz05='configs/fbocc/fbocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py',
)
EXTRA = dict(
    depth_unsup='model = dict(bev_encoder=dict(loss_depth=None))\n',
    # the forward-backward demo's occupancy loss on the BEVFormer demo: how much of the
    # forward-backward model's gain the loss alone gives
    bevformer_lovasz="model = dict(occ_head=dict(loss=[\n"
                     "    dict(type='OccCrossEntropyLoss', class_weight={{_base_.class_weight}}),\n"
                     "    dict(type='LovaszSoftmaxLoss')]))\n",
    # the forward-backward demo with Lovasz-softmax at half weight (the demo: FB-OCC's 1.0)
    depth_lovasz05="model = dict(occ_head=dict(loss=[\n"
                   "    dict(type='OccCrossEntropyLoss', class_weight={{_base_.class_weight}}),\n"
                   "    dict(type='LovaszSoftmaxLoss', loss_weight=0.5)]))\n")
SMOKE_ITERS = 5  # --smoke: at most this many iterations, and a SMOKE_BUDGET_S budget
SMOKE_BUDGET_S = 4.0

DERIVED = """_base_ = [{base!r}]
data_root = {data_root!r}
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
randomness = dict(seed={train_seed})
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


def write_config(work_dir, name, data_dir, budget_s, run_name=None, train_seed=0,
                 max_iters=UNBOUNDED):
    """DIR/configs/<run_name>.py: the model's demo config on the seed's data with training
    seed train_seed, turned by apply_time_budget (occnet/engine/time_budget.py, as
    `tools/train.py --time-budget`) into a run of budget_s seconds: the config's warm-up and
    cosine decay laid over the clock, the demo's own hooks kept, no validation. It stops at
    max_iters iterations if that comes first, and checkpoints only at the end. Written out
    whole (Config.dump), so the file is the config the run used."""
    path = os.path.join(work_dir, 'configs', f'{run_name or name}.py')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(DERIVED.format(base=os.path.join(ROOT, CONFIGS[name]),
                               data_root=data_dir.rstrip('/') + '/', train_seed=train_seed,
                               extra=EXTRA.get(name, '')))
    cfg = Config.fromfile(path)
    apply_time_budget(cfg, budget_s, checkpoint_interval=max_iters)
    cfg.train_cfg.max_iters = max_iters
    cfg.dump(path)
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


# TimeBudgetHook's closing line (occnet/engine/time_budget.py)
SPENT = re.compile(r'time budget: ([\d.]+) s of \d+ s in (\d+) iterations')


def budget_spent(run_dir):
    """(iterations, seconds spent) from TimeBudgetHook's closing line in the run's log
    (the last one when the run was resumed), or None without one."""
    found = None
    for path in sorted(glob.glob(os.path.join(run_dir, '*', '*.log'))):
        with open(path) as f:
            for match in SPENT.finditer(f.read()):
                found = int(match.group(2)), float(match.group(1))
    return found


def train_and_test(work_dir, name, data_dir, budget_s, run_name=None, train_seed=0,
                   max_iters=UNBOUNDED):
    """Train one model for budget_s seconds (training seed train_seed) in DIR/<run_name>
    (default: the model's name) and test it on the held-out logs. The result is kept in
    DIR/results/<run_name>.json; a later call with the same budget and seed reuses it
    (delete the file to train again)."""
    run_name = run_name or name
    saved = os.path.join(work_dir, 'results', f'{run_name}.json')
    if os.path.isfile(saved):
        with open(saved) as f:
            result = json.load(f)
        if (result.get('budget_s'), result.get('train_seed')) == (budget_s, train_seed):
            print(f'{run_name}: {json.dumps(result)} (from {saved})', flush=True)
            return result
    run_dir = os.path.join(work_dir, run_name)
    if os.path.isdir(run_dir):  # a stale run would mix its logs into this one's
        shutil.rmtree(run_dir)
    config = write_config(work_dir, name, data_dir, budget_s, run_name, train_seed, max_iters)
    log = os.path.join(work_dir, f'{run_name}.log')
    start = time.time()
    run(['tools/train.py', config, '--work-dir', run_dir], log=log)
    wall_s = time.time() - start
    with open(os.path.join(run_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    spent = budget_spent(run_dir)  # (iterations, seconds); None if the hook never closed
    iters = spent[0] if spent else int(re.search(r'iter_(\d+)\.pth$', checkpoint).group(1))
    run(['tools/test.py', config, checkpoint, '--out-dir', os.path.join(run_dir, 'test'),
         '--work-dir', run_dir, '--cfg-options', 'test_evaluator.smear=True'], log=log)
    with open(os.path.join(run_dir, 'test', 'metrics.json')) as f:
        metrics = json.load(f)
    result = {'fg_miou': metrics['fg_miou_masked'], 'miou': metrics['miou_masked'],
              'fg_miou_all': metrics['fg_miou'], 'miou_all': metrics['miou'],
              'smear_share': metrics['smear_share'],
              'false_object_share': metrics['false_object_share'],
              'iters': iters, 'train_s': round(spent[1], 1) if spent else None,
              'process_s': round(wall_s), 'budget_s': budget_s, 'train_seed': train_seed}
    trained = logged_iteration_times(run_dir)  # means of the 20 before each log line
    if trained:
        result['sec_per_iter_trained'] = round(statistics.median(trained), 3)
    for key in ('depth_abs_rel', 'depth_delta1'):
        if metrics.get(key) is not None:
            result[key] = metrics[key]
    os.makedirs(os.path.dirname(saved), exist_ok=True)
    with open(saved, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'{run_name}: {json.dumps(result)}', flush=True)
    return result


def summarise(results):
    """{model: [result of each repeat]} -> flat summary entries: with one repeat, its
    values under `<model>_<key>`; with more, the mean of each measure under that key, each
    run's foreground mIoU under `<model>_fg_miou_runs`, and the runs' own results under
    `<model>_runs`. Adds `depth_over_bevformer_fg` (ratio of the mean foreground mIoUs) and,
    with repeats, `depth_over_bevformer_fg_runs` (repeat by repeat)."""
    summary = {}
    for name, runs in results.items():
        if len(runs) == 1:
            summary.update({f'{name}_{key}': value for key, value in runs[0].items()})
            continue
        for key in runs[0]:
            if key in ('train_seed', 'budget_s'):  # a run's settings, not a measure
                continue
            values = [run.get(key) for run in runs]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                summary[f'{name}_{key}'] = round(statistics.mean(values), 4)
        summary[f'{name}_fg_miou_runs'] = [round(run['fg_miou'], 3) for run in runs]
        summary[f'{name}_runs'] = runs
    if 'bevformer' in results and 'depth' in results and summary['bevformer_fg_miou']:
        summary['depth_over_bevformer_fg'] = round(
            summary['depth_fg_miou'] / summary['bevformer_fg_miou'], 2)
        if len(results['depth']) > 1:
            summary['depth_over_bevformer_fg_runs'] = [
                round(d['fg_miou'] / b['fg_miou'], 2) if b['fg_miou'] else None
                for b, d in zip(results['bevformer'], results['depth'])]
    return summary


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
    parser.add_argument('--repeats', type=int, default=1,
                        help='train every model this many times (training seeds 0..R-1), '
                        'round-robin, and report the means')
    parser.add_argument('--ablate-depth', action='store_true',
                        help='also train the forward-backward model without depth loss')
    parser.add_argument('--smoke', action='store_true', help='check the whole flow in about '
                        'a minute a model: 4 logs of 4 frames, at most 5 iterations or 4 s each')
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error('--repeats must be at least 1')
    work_dir = os.path.abspath(args.work_dir)
    data_dir = os.path.join(work_dir, 'data')
    names = list(dict.fromkeys(args.models + (['depth_unsup'] if args.ablate_depth else [])))
    started = time.time()
    make_data(data_dir, args.seed, args.smoke)
    budget_s = SMOKE_BUDGET_S if args.smoke else args.budget_s
    max_iters = SMOKE_ITERS if args.smoke else UNBOUNDED
    results = {name: [] for name in names}
    for k in range(args.repeats):
        for name in names:
            results[name].append(train_and_test(
                work_dir, name, data_dir, budget_s, name if k == 0 else f'{name}_r{k}',
                train_seed=k, max_iters=max_iters))
    summary = dict(seed=args.seed, budget_s=budget_s, repeats=args.repeats,
                   **summarise(results))
    summary.update(date=time.strftime('%Y-%m-%d'), total_min=round(
        (time.time() - started) / 60, 1), hardware=f'{os.cpu_count()}-core '
        f'{platform.machine()} CPU, no GPU, Python {platform.python_version()}')
    with open(os.path.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary))


if __name__ == '__main__':
    main()
