"""Test an occnet checkpoint: predictions per frame plus the metrics JSON (contract 5).

    python tools/test.py CONFIG CKPT --out-dir DIR [--cfg-options key=value ...]
    ./tools/dist_test.sh CONFIG CKPT NUM_PROCESSES --out-dir DIR

Writes DIR/predictions/<token>.npz (`semantics` uint8 (200, 200, 16)) and DIR/metrics.json.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from occnet.engine.distributed import (configure_runner_for_device, finalize_distributed,
                                       init_distributed)


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
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    out_dir = args.out_dir or osp.join(cfg.work_dir, 'test')
    cfg.test_evaluator = dict(cfg.test_evaluator, out_dir=osp.join(out_dir, 'predictions'),
                              out_json=osp.join(out_dir, 'metrics.json'))
    cfg.load_from = args.checkpoint
    cfg.resume = False
    init_distributed(args.launcher)
    configure_runner_for_device(cfg)
    Runner.from_cfg(cfg).test()
    finalize_distributed()


if __name__ == '__main__':
    main()
