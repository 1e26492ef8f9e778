"""Crash-safe checkpoints: atomic writes, complete-checkpoint detection, a kill in the middle
of saving, and a killed-then-resumed run that ends bitwise where an uninterrupted one does."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO_ROOT
from occnet.engine import checkpoint_io
from occnet.engine.checkpoint_io import (find_resumable_checkpoint, is_complete_checkpoint,
                                         write_atomically)
from test_tools_e2e import CONFIG, tiny_options


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'epoch_1.pth'
    write_atomically(str(path), b'old checkpoint')

    def crash(src, dst):
        raise KeyboardInterrupt('killed while renaming')
    monkeypatch.setattr(checkpoint_io.os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(str(path), b'new checkpoint')
    assert path.read_bytes() == b'old checkpoint'
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # the temporary file is gone


def test_complete_checkpoints_are_told_from_truncated_ones(tmp_path):
    whole = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, whole)
    data = whole.read_bytes()
    cut = tmp_path / 'epoch_2.pth'
    cut.write_bytes(data[:len(data) // 2])
    (tmp_path / 'epoch_3.pth').write_bytes(b'not a checkpoint')
    assert is_complete_checkpoint(str(whole))
    assert not is_complete_checkpoint(str(cut))
    assert not is_complete_checkpoint(str(tmp_path / 'epoch_3.pth'))
    (tmp_path / 'last_checkpoint').write_text(str(cut))
    os.utime(whole, (1, 1))  # the oldest file is the only complete one
    assert find_resumable_checkpoint(str(tmp_path)) == str(whole)
    assert find_resumable_checkpoint(str(tmp_path / 'empty')) is None


KILL_ON_SECOND_SAVE = """
import os, signal
from occnet import atomic_file
from occnet.engine import checkpoint_io
real = checkpoint_io.write_atomically
saves = []
def dying_write(path, data):
    if path.endswith('.pth'):
        saves.append(path)
        if len(saves) == 2:  # epoch 2: write half of the file, then die as a preemption would
            folder = os.path.dirname(path)
            with open(os.path.join(folder, atomic_file.TMP_PREFIX + 'partial'), 'wb') as f:
                f.write(data[:len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return real(path, data)
checkpoint_io.write_atomically = dying_write
"""


def run_train(args, env=None, timeout=300, config=CONFIG):
    full_env = dict(os.environ, OMP_NUM_THREADS='1', **(env or {}))
    return subprocess.run([sys.executable, 'tools/train.py', config, *args], cwd=REPO_ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def test_kill_while_saving_keeps_the_previous_checkpoint(tiny_data_root, tmp_path):
    hook_dir = tmp_path / 'inject'
    hook_dir.mkdir()
    (hook_dir / 'sitecustomize.py').write_text(KILL_ON_SECOND_SAVE)
    work = tmp_path / 'work'
    options = ['--work-dir', str(work), '--cfg-options',
               *tiny_options(tiny_data_root, max_epochs=2)]  # the demo keeps 1 checkpoint
    killed = run_train(options, env=dict(PYTHONPATH=os.pathsep.join(
        [str(hook_dir), os.environ.get('PYTHONPATH', '')])))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert is_complete_checkpoint(str(work / 'epoch_1.pth'))
    assert not (work / 'epoch_2.pth').exists()
    assert find_resumable_checkpoint(str(work)) == str(work / 'epoch_1.pth')
    resumed = run_train(options + ['--resume'])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed epoch: 1' in resumed.stdout + resumed.stderr
    assert is_complete_checkpoint(str(work / 'epoch_2.pth'))


# the demo with random augmentation, as the full configs train: what a data worker draws
AUGMENTED = """_base_ = [{base!r}]
pipeline = [
    dict(type='LoadMultiViewImages'),
    dict(type='ResizeMultiViewImages', scale=0.8),
    dict(type='PhotoMetricDistortionMultiViewImages'),
    dict(type='GridMaskMultiViewImages'),
    dict(type='LoadOccupancyLabel'),
    dict(type='RandomFlipBEV'),
    dict(type='PackOccInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
"""


def kill_and_resume_equals_straight(tmp_path, options, config=CONFIG):
    """Train 3 epochs straight, and again killed in epoch 2 then resumed: the final weights
    and optimiser state must be bitwise equal."""
    straight = run_train(options(tmp_path / 'straight'), config=config)
    assert straight.returncode == 0, straight.stderr[-3000:]

    work = tmp_path / 'killed'
    proc = subprocess.Popen([sys.executable, 'tools/train.py', config, *options(work)],
                            cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (work / 'epoch_1.pth').is_file() and proc.poll() is None:
        assert time.time() < deadline, 'no checkpoint within 240 s'
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    proc.kill()
    proc.wait()
    assert not (work / 'epoch_3.pth').exists()
    resumed = run_train(options(work) + ['--resume'], config=config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    want = torch.load(tmp_path / 'straight' / 'epoch_3.pth', weights_only=True)
    got = torch.load(work / 'epoch_3.pth', weights_only=True)
    assert got['meta']['iter'] == want['meta']['iter'] == 18  # 3 epochs x 6 frames
    assert want['state_dict'].keys() == got['state_dict'].keys()
    for name, tensor in want['state_dict'].items():
        assert torch.equal(got['state_dict'][name], tensor), name
    for key in ('state', 'param_groups'):
        assert str(got['optimizer'][key]) == str(want['optimizer'][key]), key


def test_killed_and_resumed_run_ends_bitwise_equal(tiny_data_root, tmp_path):
    kill_and_resume_equals_straight(tmp_path, lambda work: [
        '--work-dir', str(work), '--cfg-options', *tiny_options(tiny_data_root, max_epochs=3),
        'default_hooks.checkpoint.max_keep_ckpts=3'])


def test_killed_and_resumed_run_with_two_workers_ends_bitwise_equal(tiny_data_root, tmp_path):
    # 2 persistent data workers drawing photometric, grid-mask and BEV-flip augmentation:
    # the resumed run's new workers must draw what the straight run's drew in epochs 2-3
    config = tmp_path / 'augmented.py'
    config.write_text(AUGMENTED.format(base=os.path.join(REPO_ROOT, CONFIG)))
    kill_and_resume_equals_straight(tmp_path, lambda work: [
        '--work-dir', str(work), '--cfg-options', *tiny_options(tiny_data_root, max_epochs=3),
        'default_hooks.checkpoint.max_keep_ckpts=3', 'train_dataloader.num_workers=2',
        'train_dataloader.persistent_workers=True'], config=str(config))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_crafted_checkpoint_is_refused_by_test_and_resume(tmp_path):
    marker = tmp_path / 'code_ran'
    crafted = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': _RunsCode(marker)}, crafted)
    test = subprocess.run([sys.executable, 'tools/test.py', CONFIG, str(crafted)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    resume = run_train(['--work-dir', str(tmp_path / 'work'), '--resume', str(crafted)])
    for result in (test, resume):
        assert result.returncode != 0
        assert f'refusing checkpoint {crafted}: it holds objects other than tensors' in \
            result.stderr
    assert not marker.exists()  # nothing in the file ran
    truncated = tmp_path / 'cut.pth'
    truncated.write_bytes(b'PK\x03\x04 not really a zip')
    cut = subprocess.run([sys.executable, 'tools/test.py', CONFIG, str(truncated)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert cut.returncode != 0 and 'is not a readable torch file' in cut.stderr


def test_a_checkpoint_that_does_not_fit_is_refused_by_name():
    from occnet.engine.checkpoint_fit import CheckpointMismatchError, check_checkpoint_fits
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    state = {f'module.{k}': v for k, v in model.state_dict().items()}  # a DDP checkpoint
    check_checkpoint_fits(model, {'state_dict': state}, 'ok.pth')  # fits: no error
    state['module.0.weight'] = torch.zeros(5, 3)
    del state['module.1.running_mean']
    state['module.2.weight'] = torch.zeros(1)
    name = 'bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic_20261203_101500'
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint_fits(model, {'state_dict': state, 'meta': {'experiment_name': name}},
                              'other.pth')
    message = str(err.value)
    assert 'checkpoint other.pth does not fit' in message
    assert '1 missing from the checkpoint (1.running_mean)' in message
    assert '1 not in the model (2.weight)' in message
    assert '0.weight (5, 3) in the checkpoint, (4, 3) in the model' in message
    assert ('trained with configs/bevformer_occ/'
            'bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py') in message
    with pytest.raises(CheckpointMismatchError, match='does not name its config'):
        check_checkpoint_fits(model, {'state_dict': state}, 'other.pth')


def test_a_checked_checkpoint_is_read_once(tmp_path, monkeypatch):
    # tools/test.py and --resume check the file, then the Runner loads it: one torch.load
    from mmengine.runner.checkpoint import _load_checkpoint

    from occnet.engine.checkpoint_io import check_checkpoint
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.ones(3)}}, path)
    reads, real_load = [], torch.load
    monkeypatch.setattr(torch, 'load', lambda f, *a, **k: reads.append(k) or real_load(f, *a, **k))
    checked = check_checkpoint(str(path))
    assert _load_checkpoint(str(path), map_location='cpu') is checked and len(reads) == 1
    again = _load_checkpoint(str(path))  # not checked since: read again, safely
    assert len(reads) == 2 and reads[1]['weights_only'] is True
    assert torch.equal(again['state_dict']['w'], torch.ones(3))
