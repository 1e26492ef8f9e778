"""Train an occnet model.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [auto|CKPT]] [--amp [bf16|fp16]]
                                 [--time-budget SECONDS] [--cfg-options key=value ...]
    ./tools/dist_train.sh CONFIG NUM_PROCESSES [same options]
"""
import argparse
import os
import sys

from mmengine.config import DictAction

from occnet.engine.amp import configure_amp
from occnet.engine.checkpoint_io import (UnsafeCheckpointError, check_checkpoint,
                                         find_resumable_checkpoint)
from occnet.engine.launch import add_run_options, check_run_config, load_config, run
from occnet.engine.time_budget import apply_time_budget


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CKPT, or with no value (or "auto") from the newest '
                        'complete checkpoint in the work dir (truncated files are skipped)')
    parser.add_argument('--amp', nargs='?', const='bf16', choices=('bf16', 'fp16'),
                        help='mixed precision: bf16 autocast (the default of a bare --amp; '
                        'CPU or GPU) or fp16 autocast with loss scaling (GPU)')
    parser.add_argument('--time-budget', type=float, metavar='SECONDS',
                        help="train for this many seconds of wall clock instead of the "
                        "config's epochs or iterations; the config's warm-up and cosine "
                        'decay follow the clock and end at the budget (TimeBudgetHook); '
                        'a checkpoint every 500 iterations and at the end (when the config '
                        'has a checkpoint hook; --cfg-options still override); no '
                        'validation during the run (tools/test.py the last checkpoint)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_epochs=2')
    add_run_options(parser, 'dist_train.sh')
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.allow_partial:
        cfg.allow_partial_checkpoint = True
    if args.time_budget is not None:
        try:
            hook = apply_time_budget(cfg, args.time_budget)
        except ValueError as err:
            raise SystemExit(f'error: {args.config}: {err}') from None
        if args.cfg_options:  # the user's overrides win (a checkpoint interval, say)
            cfg.merge_from_dict(args.cfg_options)
        print(f'[train] --time-budget: {args.time_budget:.0f} s of training, warm-up '
              f"{hook['warmup_iters']} iterations then cosine to {hook['eta_min_ratio']:g} "
              'over the clock', file=sys.stderr)
    if args.resume == 'auto':
        newest = find_resumable_checkpoint(cfg.work_dir)
        if newest is None:
            print(f'[train] --resume: no complete checkpoint in {cfg.work_dir}; starting a new '
                  'run', file=sys.stderr)
        else:
            print(f'[train] --resume: resuming from {newest}', file=sys.stderr)
        cfg.resume, cfg.load_from = newest is not None, newest
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if cfg.get('load_from') and '://' not in str(cfg.load_from):  # refuse unsafe files first
        try:
            check_checkpoint(cfg.load_from)
        except (FileNotFoundError, UnsafeCheckpointError) as err:
            raise SystemExit(f'error: {err}') from None
    try:
        configure_amp(cfg, args.amp)
    except ValueError as err:
        raise SystemExit(f'error: {err}') from None
    if args.check_only:
        check_run_config(cfg, 'train', with_checkpoint=True)
        return
    run(cfg, 'train')


if __name__ == '__main__':
    main()
