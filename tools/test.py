"""Test an occnet checkpoint: predictions per frame plus the metrics JSON (contract 5).

    python tools/test.py CONFIG CKPT --out-dir DIR [--cfg-options key=value ...]
    ./tools/dist_test.sh CONFIG CKPT NUM_PROCESSES --out-dir DIR

Writes DIR/predictions/<token>.npz (`semantics` uint8 (200, 200, 16)) and DIR/metrics.json.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

from occnet.engine.checkpoint_io import UnsafeCheckpointError, check_checkpoint
from occnet.engine.launch import add_run_options, check_run_config, load_config, run


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', help='predictions and metrics.json go here '
                        '(default: <work dir>/test)')
    parser.add_argument('--work-dir', help='where logs go (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. test_dataloader.num_workers=0')
    add_run_options(parser, 'dist_test.sh')
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    try:
        check_checkpoint(args.checkpoint)
    except (FileNotFoundError, UnsafeCheckpointError) as err:
        raise SystemExit(f'error: {err}') from None
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.allow_partial:
        cfg.allow_partial_checkpoint = True
    out_dir = args.out_dir or osp.join(cfg.work_dir, 'test')
    cfg.test_evaluator = dict(cfg.test_evaluator, out_dir=osp.join(out_dir, 'predictions'),
                              out_json=osp.join(out_dir, 'metrics.json'))
    cfg.load_from, cfg.resume = args.checkpoint, False
    if args.check_only:
        check_run_config(cfg, 'test', with_checkpoint=True)
        return
    run(cfg, 'test')


if __name__ == '__main__':
    main()
