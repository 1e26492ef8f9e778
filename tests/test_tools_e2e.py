"""End to end through the command-line tools on a tiny synthetic set (CPU, gloo):
train -> resume -> test -> eval_occ, 2-process training with a kill and --resume,
2-process testing equal to 1 process, and a 2-node job on one machine."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO_ROOT

CONFIG = 'configs/bevformer_occ/bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py'


def tiny_options(data_root, max_epochs=1, val_interval=100):
    """--cfg-options shrinking the demo config to seconds per epoch on the tiny data."""
    root = f'{data_root}/'
    opts = []
    for split, name in (('train', 'train'), ('val', 'val'), ('test', 'val')):
        opts += [f'{split}_dataloader.dataset.data_root={root}',
                 f'{split}_dataloader.dataset.ann_file={root}openscene_mini_{name}.pkl',
                 f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False']
    opts += ['model.bev_encoder.bev_h=25', 'model.bev_encoder.bev_w=25',
             'model.bev_encoder.embed_dims=16', 'model.bev_encoder.ffn_dims=32',
             'model.img_neck.out_channels=16', 'model.occ_head.in_channels=16',
             'model.occ_head.bev_h=25', 'model.occ_head.bev_w=25',
             'model.occ_head.hidden_dims=4', f'train_cfg.max_epochs={max_epochs}',
             f'train_cfg.val_interval={val_interval}', 'train_cfg.val_begin=1',
             'default_hooks.checkpoint.interval=1',
             'default_hooks.logger.interval=2']
    return opts


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run(args, env=None, timeout=300):
    full_env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', **(env or {}))
    result = subprocess.run(args, cwd=REPO_ROOT, env=full_env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).splitlines()
        clues = [ln for ln in lines if any(w in ln for w in ('Error', 'error:', 'terminate',
                                                             'Traceback', 'what()'))]
        pytest.fail(f'{" ".join(args[:3])} exited {result.returncode}\n' + '\n'.join(
            clues[-20:]) + '\n...\n' + '\n'.join(lines[-40:]))
    return result.stdout + result.stderr


def read_metrics(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def trained(tiny_data_root, tmp_path_factory):
    """One process: 1 epoch, then --resume to 2 epochs with a validation at the end. Returns
    the work dir."""
    work_dir = tmp_path_factory.mktemp('train')
    first = run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir),
                 '--cfg-options', *tiny_options(tiny_data_root, max_epochs=1)])
    assert (work_dir / 'epoch_1.pth').is_file()
    log = run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir),
               '--resume', '--cfg-options', *tiny_options(tiny_data_root, max_epochs=2,
                                                          val_interval=2)])
    assert 'resumed epoch: 1, iter: 6' in log
    (work_dir / 'console.txt').write_text(first + log)  # both runs' stdout and stderr
    return work_dir


def test_training_output_has_no_registry_scope_warning(trained):
    console = (trained / 'console.txt').read_text()
    assert 'Epoch(train)' in console and 'Epoch(val)' in console
    assert 'Failed to search registry' not in console


def test_checkpoint_loads_with_weights_only(trained):
    checkpoint = torch.load(trained / 'epoch_2.pth', map_location='cpu', weights_only=True)
    assert checkpoint['meta']['epoch'] == 2 and checkpoint['meta']['iter'] == 12
    assert any(k.startswith('bev_encoder.') for k in checkpoint['state_dict'])


def test_validation_writes_metrics_and_renders_to_tensorboard(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = sorted(trained.glob('*/vis_data/events.out.tfevents.*'))
    assert events, 'no TensorBoard event file under the work dir'
    tags = {'scalars': set(), 'images': set()}
    chase_steps = []
    for path in events:
        accumulator = EventAccumulator(str(path), size_guidance={'images': 0}).Reload()
        for kind in tags:
            tags[kind] |= set(accumulator.Tags()[kind])
        if 'val/0_3d' in accumulator.Tags()['images']:
            for image in accumulator.Images('val/0_3d'):
                assert image.width == 2 * 20 + 3 * 400 + 2 * 16
                chase_steps.append(image.step)
    assert sorted(chase_steps) == [1, 2]  # the last epoch of each run is validated
    # every metric of the validation, the masked / near / far variants and each class
    for key in ('miou', 'iou', 'miou_16', 'fg_miou', 'precision', 'recall', 'miou_masked',
                'miou_near', 'miou_far', 'vehicle_iou', 'background_iou'):
        assert f'occ/{key}' in tags['scalars'], key
    assert {'val/0_topdown', 'val/1_topdown', 'val/0_3d', 'val/1_3d'} <= tags['images']


def test_test_script_and_eval_occ_agree(trained, tiny_data_root):
    out_dir = trained / 'test1'
    run([sys.executable, 'tools/test.py', CONFIG, str(trained / 'epoch_2.pth'), '--out-dir',
         str(out_dir), '--work-dir', str(trained), '--cfg-options',
         *tiny_options(tiny_data_root), 'test_evaluator.ray_iou=True'])
    metrics = read_metrics(out_dir / 'metrics.json')
    assert {'miou', 'iou', 'per_class', 'miou_16'} <= set(metrics)
    assert len(os.listdir(out_dir / 'predictions')) == 6
    run([sys.executable, 'tools/eval_occ.py', '--infos',
         str(tiny_data_root / 'openscene_mini_val.pkl'), '--pred-dir',
         str(out_dir / 'predictions'), '--out-json', str(out_dir / 'eval.json'), '--ray-iou'])
    offline = read_metrics(out_dir / 'eval.json')
    for key in ('miou', 'iou', 'miou_16', 'miou_masked', 'ray_iou', 'ray_iou@1m'):
        assert offline[key] == pytest.approx(metrics[key], abs=1e-9), key


def test_test_script_refuses_a_checkpoint_of_another_config(trained, tiny_data_root):
    # the demo checkpoint under a config whose head is twice as wide: refused, naming the
    # keys and the config it was trained with; --allow-partial loads the rest anyway
    args = [sys.executable, 'tools/test.py', CONFIG, str(trained / 'epoch_2.pth'), '--out-dir',
            str(trained / 'partial'), '--work-dir', str(trained), '--cfg-options',
            *tiny_options(tiny_data_root), 'model.occ_head.hidden_dims=8']
    refused = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert refused.returncode != 0
    error = [ln for ln in refused.stderr.splitlines() if ln.startswith('error:')]
    assert len(error) == 1, refused.stderr[-2000:]
    assert 'epoch_2.pth does not fit' in error[0]
    assert 'occ_head.lift.weight (64, 16) in the checkpoint, (128, 16) in the model' in error[0]
    assert f'trained with {CONFIG}' in error[0] and '--allow-partial' in error[0]
    assert not (trained / 'partial' / 'metrics.json').exists()
    run(args + ['--allow-partial'])
    assert (trained / 'partial' / 'metrics.json').is_file()


def test_a_config_error_under_dist_train_is_printed_once(tiny_data_root):
    # dist_train.sh checks the config once before torchrun starts its 2 processes: one
    # error line naming the key and the fix, no rank's copy of it, no elastic traceback
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--cfg-options',
         *tiny_options(tiny_data_root), 'model.occ_head.hiden_dims=4'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHON=sys.executable, PORT=str(free_port())))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count('error: config problems:') == 1
    assert output.count("BEVOccHead has no argument 'hiden_dims' (did you mean "
                        "'hidden_dims'?)") == 1
    assert 'elastic' not in output and 'Traceback' not in output


def test_dist_test_two_processes_equals_one(trained, tiny_data_root):
    if not (trained / 'test1' / 'metrics.json').is_file():
        pytest.skip('needs test_test_script_and_eval_occ_agree to run first')
    out_dir = trained / 'test2'
    run(['bash', 'tools/dist_test.sh', CONFIG, str(trained / 'epoch_2.pth'), '2', '--out-dir',
         str(out_dir), '--work-dir', str(trained), '--cfg-options',
         *tiny_options(tiny_data_root)], env=dict(PORT=str(free_port())))
    one, two = read_metrics(trained / 'test1' / 'metrics.json'), read_metrics(
        out_dir / 'metrics.json')
    assert two['num_frames'] == one['num_frames'] == 6
    for key in ('miou', 'iou', 'miou_16', 'miou_masked', 'per_class'):
        assert two[key] == one[key], key


def test_dist_train_killed_then_resumed(tiny_data_root, tmp_path):
    args = ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(tmp_path),
            '--cfg-options', *tiny_options(tiny_data_root, max_epochs=3)]
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', PORT=str(free_port()))
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 240
    while not (tmp_path / 'epoch_1.pth').is_file() and proc.poll() is None:
        assert time.time() < deadline, 'no checkpoint within 240 s'
        time.sleep(0.2)
    if proc.poll() is not None:
        pytest.fail('training ended before it could be killed:\n' + proc.stdout.read()[-4000:])
    os.killpg(proc.pid, signal.SIGKILL)  # stop the whole job, as a preemption would
    proc.wait()
    assert not (tmp_path / 'epoch_3.pth').exists()
    log = run(args + ['--resume'],
              env=dict(PORT=str(free_port())))
    assert f'[train] --resume: resuming from {tmp_path}/epoch_' in log
    assert 'resumed epoch:' in log
    assert (tmp_path / 'epoch_3.pth').is_file()
    # 2 processes x batch 1 over 3 training frames per rank: 3 iterations per epoch
    assert torch.load(tmp_path / 'epoch_3.pth', weights_only=True)['meta']['iter'] == 9


def test_two_nodes_on_one_machine(tiny_data_root, tmp_path):
    port = str(free_port())
    args = ['bash', 'tools/dist_train.sh', CONFIG, '1', '--work-dir', str(tmp_path),
            '--cfg-options', *tiny_options(tiny_data_root, max_epochs=1)]
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', NNODES='2',
                   NODE_RANK=str(rank), MASTER_ADDR='127.0.0.1', PORT=port)
        procs.append(subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert 'world_size: 2' in outputs[0] or 'GPU number: 2' in outputs[0]
    checkpoint = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)
    assert checkpoint['meta']['iter'] == 3  # 6 frames split over 2 ranks
