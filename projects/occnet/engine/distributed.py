"""Process-group set-up that works with and without CUDA (gloo on CPU-only machines)."""
import datetime
import logging
import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.logging import print_log


def _slurm_to_torch_env(port):
    """Translate SLURM's variables to the ones torch.distributed reads."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ['SLURM_LOCALID'])
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        first = subprocess.check_output(['scontrol', 'show', 'hostnames', nodes], text=True)
        os.environ['MASTER_ADDR'] = first.split()[0]
    os.environ.setdefault('MASTER_PORT', str(port))


def init_distributed(launcher, timeout_s=1800, port=29500):
    """Initialise torch.distributed for `launcher` ('none', 'pytorch' or 'slurm').

    NCCL with one GPU per process when CUDA is available, gloo otherwise. A collective that
    waits longer than `timeout_s` seconds (a rank hung or gone) fails on either backend: on
    NCCL the watchdog then ends the process (_keep_nccl_timeouts_fatal). Logs the backend and
    the timeout. Returns the backend name, or None for 'none'.
    """
    if launcher == 'none' or dist.is_initialized():
        return dist.get_backend() if dist.is_initialized() else None
    if launcher == 'slurm':
        _slurm_to_torch_env(port)
    elif launcher != 'pytorch':
        raise ValueError(f'unknown launcher {launcher!r}; use none, pytorch or slurm')
    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    options = {}
    if backend == 'nccl':
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
        torch.cuda.set_device(local_rank)
        _keep_nccl_timeouts_fatal()
        # binds the group to this GPU: NCCL connects now and barrier() uses this GPU
        options['device_id'] = torch.device('cuda', local_rank)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s),
                            **options)
    print_log(f'torch.distributed: rank {os.environ.get("RANK", 0)} of '
              f'{os.environ.get("WORLD_SIZE", 1)}, backend {backend}, collectives time out '
              f'after {timeout_s} s (env_cfg.dist_cfg.timeout)', logger='current')
    return backend


def _keep_nccl_timeouts_fatal():
    """Make NCCL's watchdog end the process on a timed-out collective: set
    TORCH_NCCL_ASYNC_ERROR_HANDLING=3 (torch's default: tear down without ncclCommAbort, which
    can itself hang) unless it or its old name is set; warn when it is set to 0 (no handling:
    the timeout is only logged and the job hangs)."""
    names = ('TORCH_NCCL_ASYNC_ERROR_HANDLING', 'NCCL_ASYNC_ERROR_HANDLING')
    chosen = next((name for name in names if name in os.environ), None)
    if chosen is None:
        os.environ[names[0]] = '3'
    elif os.environ[chosen].strip() == '0':
        print_log(f'{chosen}=0 in the environment: a collective that times out will not end '
                  'the process and the job can hang; unset it or use 3', logger='current',
                  level=logging.WARNING)


def configure_runner_for_device(cfg):
    """Adjust an mmengine config for the process group in use: gloo backend and
    DDP without device_ids when there is no CUDA."""
    if not torch.cuda.is_available():
        cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
        wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
    return cfg


def finalize_distributed():
    """Wait for every rank, then tear the process group down, so no rank exits while another
    still talks to it."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
