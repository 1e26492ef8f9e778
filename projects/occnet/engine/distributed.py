"""Process-group set-up that works with and without CUDA (gloo on CPU-only machines)."""
import datetime
import os
import subprocess

import torch
import torch.distributed as dist


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

    NCCL with one GPU per process when CUDA is available, gloo otherwise.
    Returns the backend name, or None for 'none'.
    """
    if launcher == 'none' or dist.is_initialized():
        return dist.get_backend() if dist.is_initialized() else None
    if launcher == 'slurm':
        _slurm_to_torch_env(port)
    elif launcher != 'pytorch':
        raise ValueError(f'unknown launcher {launcher!r}; use none, pytorch or slurm')
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    backend = 'nccl' if use_cuda else 'gloo'
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return backend


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
