"""What tools/train.py and tools/test.py share: config loading and running under a launcher."""
import os.path as osp

from mmengine.config import Config
from mmengine.runner import Runner

from occnet.engine.config_check import ConfigError, check_config
from occnet.engine.distributed import (configure_runner_for_device, finalize_distributed,
                                       init_distributed)
from occnet.engine.memory_advice import out_of_memory_advice
from occnet.ops import set_msda_backend


def load_config(config_path, cfg_options=None, launcher='none', work_dir=None):
    """Config with `--cfg-options` merged, the launcher set and a work dir (default
    work_dirs/<config name>)."""
    cfg = Config.fromfile(config_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(config_path))[0])
    return cfg


def apply_runtime_options(cfg):
    """Process-wide switches a config may set: `msda_backend` (ops.BACKENDS)."""
    set_msda_backend(cfg.get('msda_backend', 'auto'))


def run(cfg, mode):
    """Set up the process group for cfg.launcher, build the Runner and call its `mode`
    ('train' or 'test'), then tear the process group down. A CUDA out-of-memory error ends
    the run with the options that cut memory (memory_advice)."""
    apply_runtime_options(cfg)
    sections = ['test_dataloader'] if mode == 'test' else ['train_dataloader'] + (
        ['val_dataloader'] if cfg.get('val_cfg') and cfg.get('val_dataloader') else [])
    try:
        check_config(cfg, sections)
    except ConfigError as err:
        raise SystemExit(f'error: {err}') from None
    # a collective that waits longer than this (a rank hung or gone) ends the job with an error
    timeout_s = (cfg.get('env_cfg') or {}).get('dist_cfg', {}).get('timeout', 1800)
    init_distributed(cfg.launcher, timeout_s=timeout_s)
    configure_runner_for_device(cfg)
    with out_of_memory_advice(cfg, mode):
        getattr(Runner.from_cfg(cfg), mode)()
    finalize_distributed()
