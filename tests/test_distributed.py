"""init_distributed: the config's collective timeout reaches the process group on NCCL (CPU:
CUDA and init_process_group are stood in for) and the backend and timeout are logged."""
import datetime
import os

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from occnet.engine import distributed

from conftest import REPO_ROOT


@pytest.fixture
def nccl_machine(monkeypatch):
    """A pretend CUDA machine: records init_process_group's arguments, set_device's index
    and the log lines instead of running them."""
    record = dict(calls=[], devices=[], logs=[])
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'set_device', record['devices'].append)
    monkeypatch.setattr(dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group',
                        lambda **kwargs: record['calls'].append(kwargs))
    monkeypatch.setattr(distributed, 'print_log',
                        lambda msg, **kwargs: record['logs'].append((msg, kwargs)))
    for name in ('TORCH_NCCL_ASYNC_ERROR_HANDLING', 'NCCL_ASYNC_ERROR_HANDLING'):
        monkeypatch.setenv(name, '')  # so that what init_distributed sets is undone
        monkeypatch.delenv(name)
    monkeypatch.setenv('RANK', '3')
    monkeypatch.setenv('WORLD_SIZE', '4')
    monkeypatch.setenv('LOCAL_RANK', '1')
    return record


def test_nccl_gets_the_config_timeout_and_a_fatal_watchdog(nccl_machine, monkeypatch):
    cfg = Config.fromfile(f'{REPO_ROOT}/configs/bevformer_occ/'
                          'bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py')
    cfg.merge_from_dict({'env_cfg.dist_cfg.timeout': 120})
    timeout_s = cfg.env_cfg.dist_cfg.timeout  # as launch.run reads it
    assert distributed.init_distributed('pytorch', timeout_s=timeout_s) == 'nccl'
    assert nccl_machine['calls'] == [dict(backend='nccl',
                                          timeout=datetime.timedelta(seconds=120),
                                          device_id=torch.device('cuda', 1))]
    assert nccl_machine['devices'] == [1]
    assert os.environ['TORCH_NCCL_ASYNC_ERROR_HANDLING'] == '3'
    (message, kwargs), = nccl_machine['logs']
    assert 'rank 3 of 4, backend nccl, collectives time out after 120 s' in message
    assert kwargs == dict(logger='current')


def test_the_environment_choice_is_kept_and_a_hanging_one_warned(nccl_machine, monkeypatch):
    monkeypatch.setenv('TORCH_NCCL_ASYNC_ERROR_HANDLING', '1')
    distributed.init_distributed('pytorch', timeout_s=60)
    assert os.environ['TORCH_NCCL_ASYNC_ERROR_HANDLING'] == '1'
    assert len(nccl_machine['logs']) == 1  # only the set-up line
    monkeypatch.delenv('TORCH_NCCL_ASYNC_ERROR_HANDLING')
    monkeypatch.setenv('NCCL_ASYNC_ERROR_HANDLING', '0')  # the old name still counts
    distributed.init_distributed('pytorch', timeout_s=60)
    assert 'TORCH_NCCL_ASYNC_ERROR_HANDLING' not in os.environ
    warning = nccl_machine['logs'][1][0]
    assert warning.startswith('NCCL_ASYNC_ERROR_HANDLING=0') and 'hang' in warning


def test_gloo_without_cuda_gets_the_timeout_and_no_device(nccl_machine, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert distributed.init_distributed('pytorch', timeout_s=45) == 'gloo'
    assert nccl_machine['calls'] == [dict(backend='gloo',
                                          timeout=datetime.timedelta(seconds=45))]
    assert nccl_machine['devices'] == []
    assert 'backend gloo, collectives time out after 45 s' in nccl_machine['logs'][0][0]
