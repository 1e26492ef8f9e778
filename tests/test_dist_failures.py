"""One of two processes raising, in training and in evaluation: the whole job exits non-zero
within 60 s and the log names the failing rank and its error. One of two processes hanging:
the job ends within the configured collective timeout."""
import os
import subprocess
import sys
import time

from conftest import REPO_ROOT
from test_tools_e2e import CONFIG, free_port, tiny_options

RAISE_ON_RANK1 = """
import os
if os.environ.get('RANK') == '1' and os.environ.get('LOCAL_RANK') is not None:
    where = os.environ['OCCNET_TEST_FAULT']
    if where in ('train', 'hang'):
        from occnet.models.detectors import bevformer_occ as module
        cls, name = module.BEVFormerOcc, 'loss'
    else:
        from occnet.evaluation import occupancy_metric as module
        cls, name = module.OccupancyMetric, 'process'
    real = getattr(cls, name)
    calls = [0]
    def faulty(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 2 and where == 'hang':
            import time
            time.sleep(3600)  # a rank stuck in its forward pass, e.g. on a dead file system
        if calls[0] == 2:
            raise RuntimeError(f'injected fault on rank 1 during {where}')
        return real(self, *args, **kwargs)
    setattr(cls, name, faulty)
"""


def run_with_fault(tmp_path, where, script, args):
    inject = tmp_path / 'inject'
    inject.mkdir(exist_ok=True)
    (inject / 'sitecustomize.py').write_text(RAISE_ON_RANK1)
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', PORT=str(free_port()),
               OCCNET_TEST_FAULT=where,
               PYTHONPATH=os.pathsep.join([str(inject), os.environ.get('PYTHONPATH', '')]))
    start = time.time()
    result = subprocess.run(['bash', script, *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
    return result, time.time() - start


def test_a_rank_raising_in_training_ends_the_job(tiny_data_root, tmp_path):
    result, seconds = run_with_fault(
        tmp_path, 'train', 'tools/dist_train.sh',
        [CONFIG, '2', '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         *tiny_options(tiny_data_root, max_epochs=1)])
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert seconds < 60, f'the job took {seconds:.0f} s to end'
    assert 'injected fault on rank 1 during train' in log
    assert 'rank      : 1' in log or 'rank: 1' in log  # torchrun's failure summary


def test_a_rank_raising_in_evaluation_ends_the_job(tiny_data_root, tmp_path):
    work = tmp_path / 'work'
    trained = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work),
                              '--cfg-options', *tiny_options(tiny_data_root, max_epochs=1)],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert trained.returncode == 0, trained.stderr[-2000:]
    result, seconds = run_with_fault(
        tmp_path, 'test', 'tools/dist_test.sh',
        [CONFIG, str(work / 'epoch_1.pth'), '2', '--out-dir', str(tmp_path / 'test'),
         '--work-dir', str(work), '--cfg-options', *tiny_options(tiny_data_root)])
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert seconds < 60, f'the job took {seconds:.0f} s to end'
    assert 'injected fault on rank 1 during test' in log
    assert 'rank      : 1' in log or 'rank: 1' in log


def test_a_hung_rank_ends_the_job_within_the_collective_timeout(tiny_data_root, tmp_path):
    # rank 1 sleeps in its second forward pass; rank 0 waits in the gradient all-reduce until
    # the 10 s collective timeout (env_cfg.dist_cfg.timeout) fails it, and torchrun ends rank 1
    result, seconds = run_with_fault(
        tmp_path, 'hang', 'tools/dist_train.sh',
        [CONFIG, '2', '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         *tiny_options(tiny_data_root, max_epochs=1), 'env_cfg.dist_cfg.timeout=10'])
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert seconds < 75, f'the job took {seconds:.0f} s to end'
    assert 'collectives time out after 10 s' in log
    assert 'timed out' in log.lower() or 'timeout' in log.lower()
