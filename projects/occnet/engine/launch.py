"""What tools/train.py and tools/test.py share: config loading and running under a launcher."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from occnet.engine.checkpoint_fit import CheckpointMismatchError, check_checkpoint_fits
from occnet.engine.config_check import ConfigError, check_config
from occnet.engine.distributed import (configure_runner_for_device, finalize_distributed,
                                       init_distributed)
from occnet.engine.memory_advice import out_of_memory_advice
from occnet.ops import set_msda_backend
from occnet.registry import MODELS


def add_run_options(parser, dist_script):
    """The options tools/train.py and tools/test.py share: --allow-partial, --check-only
    (what `dist_script` runs once before torchrun), --launcher and --local-rank."""
    parser.add_argument('--allow-partial', action='store_true',
                        help='load a checkpoint whose parameters do not all match the model '
                        '(the rest stays as initialised); refused by default')
    parser.add_argument('--check-only', action='store_true',
                        help='check the config, and that the checkpoint fits the model, '
                        f'then exit ({dist_script} runs this once before it starts the '
                        'processes)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)


def load_config(config_path, cfg_options=None, launcher='none', work_dir=None):
    """Config with `--cfg-options` merged, the launcher set and a work dir (default
    work_dirs/<config name>)."""
    cfg = Config.fromfile(config_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(config_path))[0])
    link_ray_origins(cfg)
    return cfg


def link_ray_origins(cfg):
    """Set `with_ray_origins=True` on the val / test dataset whose evaluator has
    ray_iou=True, so the samples carry RayIoU's origins only when they are used."""
    for loader, evaluator in (('val_dataloader', 'val_evaluator'),
                              ('test_dataloader', 'test_evaluator')):
        metrics = cfg.get(evaluator)
        metrics = metrics if isinstance(metrics, (list, tuple)) else [metrics]
        dataset = (cfg.get(loader) or {}).get('dataset')
        if dataset is not None and any(m and m.get('ray_iou') for m in metrics):
            dataset['with_ray_origins'] = True


def apply_runtime_options(cfg):
    """Process-wide switches a config may set: `msda_backend` (ops.BACKENDS)."""
    set_msda_backend(cfg.get('msda_backend', 'auto'))


def check_run_config(cfg, mode, with_checkpoint=False):
    """check_config on the model and the dataloaders a `mode` run ('train' or 'test')
    builds; with_checkpoint: also build the model on the CPU and check that cfg.load_from
    fits it (checkpoint_fit.py; not when resuming, nor with allow_partial_checkpoint). A
    mistake ends the process with one 'error: ...' line (SystemExit)."""
    sections = ['test_dataloader'] if mode == 'test' else ['train_dataloader'] + (
        ['val_dataloader'] if cfg.get('val_cfg') and cfg.get('val_dataloader') else [])
    try:
        check_config(cfg, sections)
    except ConfigError as err:
        raise SystemExit(f'error: {err}') from None
    path = cfg.get('load_from')
    if (with_checkpoint and path and '://' not in str(path) and not cfg.get('resume')
            and not cfg.get('allow_partial_checkpoint', False)):
        init_default_scope(cfg.get('default_scope', 'occnet'))
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        try:
            check_checkpoint_fits(MODELS.build(cfg.model), checkpoint, path)
        except CheckpointMismatchError as err:
            raise SystemExit(f'error: {err}') from None


def run(cfg, mode):
    """Set up the process group for cfg.launcher, build the Runner and call its `mode`
    ('train' or 'test'), then tear the process group down. A CUDA out-of-memory error ends
    the run with the options that cut memory (memory_advice)."""
    apply_runtime_options(cfg)
    check_run_config(cfg, mode)
    # a collective that waits longer than this (a rank hung or gone) ends the job with an error
    timeout_s = (cfg.get('env_cfg') or {}).get('dist_cfg', {}).get('timeout', 1800)
    if cfg.get('load_from') and not cfg.get('allow_partial_checkpoint', False):
        # a checkpoint of another model is refused, not loaded in part (checkpoint_fit.py)
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='CheckpointFitHook', path=str(cfg.load_from))]
    init_distributed(cfg.launcher, timeout_s=timeout_s)
    configure_runner_for_device(cfg)
    with out_of_memory_advice(cfg, mode):
        try:
            getattr(Runner.from_cfg(cfg), mode)()
        except CheckpointMismatchError as err:
            raise SystemExit(f'error: {err}') from None
    finalize_distributed()
