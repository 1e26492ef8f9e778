"""tools/gpu_check.py --smoke on CPU: the GPU acceptance run's code at tiny shapes (Triton
kernels under the interpreter, the demo config), so the script works when a GPU is lent."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, 'tools'))
import gpu_check  # noqa: E402

CASES = ('sca', 'tsa')
TRITON_BACKENDS = ('triton', 'triton_csr')


def run_gpu_check(out_dir, *options, timeout=240):
    env = dict(os.environ, TRITON_INTERPRET='1', OMP_NUM_THREADS='2')
    return subprocess.run([sys.executable, 'tools/gpu_check.py', '--device', 'cpu',
                           '--out-dir', str(out_dir), *options], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('gpu_check')
    result = run_gpu_check(out_dir, '--smoke')
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    with open(out_dir / 'gpu_check.json') as f:
        report = json.load(f)
    return report, {item['id']: item for item in report['items']}, out_dir, result


def test_smoke_passes_and_finishes(smoke):
    report, _, _, result = smoke
    assert report['ok'] and report['finished'] and report['smoke']
    assert report['device']['status'] == 'done' and report['device']['triton_interpret']
    assert '[gpu_check' in result.stderr  # progress lines with the elapsed time


def test_parity_covers_both_dtypes_cases_and_the_triton_backends(smoke):
    _, items, _, _ = smoke
    backends = {item['backend'] for item in items.values() if item['section'] == 'parity'}
    assert set(TRITON_BACKENDS) | {'sparse', 'cpu'} <= backends and 'pytorch' not in backends
    for case in CASES:
        for backend in backends:
            fp32 = items[f'parity/{case}/fp32/{backend}']
            bf16 = items[f'parity/{case}/bf16/{backend}']
            assert fp32['status'] == bf16['status'] == 'passed', (fp32, bf16)
            assert set(fp32['errors']) == {'output', 'grad_value', 'grad_locations',
                                           'grad_weights'}
            # the bf16 rows really ran in bf16 (rounding ~1e-3), the fp32 rows in fp32
            fp32_worst = max(e['max_rel'] for e in fp32['errors'].values())
            bf16_worst = max(e['max_rel'] for e in bf16['errors'].values())
            assert fp32_worst < 1e-5 and 1e-4 < bf16_worst <= bf16['tolerance']


def test_speed_table_has_every_backend_with_its_ratio_to_pytorch(smoke):
    _, items, _, _ = smoke
    for case in CASES:
        reference = items[f'speed/{case}/pytorch']
        assert reference['status'] == 'done' and reference['speedup'] == 1.0
        for backend in TRITON_BACKENDS + ('sparse', 'cpu'):
            item = items[f'speed/{case}/{backend}']
            assert item['status'] == 'done' and item['ms'] > 0 and item['repeats'] >= 1
            assert item['speedup'] == pytest.approx(reference['ms'] / item['ms'])


def test_training_and_inference_variants_measured(smoke):
    report, items, _, _ = smoke
    for variant in ('fp32', 'cp+bf16', 'compile'):
        item = items[f'train/{variant}']
        assert item['status'] == 'done' and item['sec_per_iter'] > 0, item
        assert 'tools/benchmark.py' in item['command']
    assert items['train/cp+bf16']['amp'] == 'bf16'
    for variant in ('fp32', 'bf16'):
        assert items[f'infer/{variant}']['samples_per_sec'] > 0
    assert [g['status'] for g in report['goals']] == ['n/a (smoke)'] * 2


def test_markdown_has_the_tables(smoke):
    _, _, out_dir, result = smoke
    text = (out_dir / 'gpu_check.md').read_text()
    assert text in result.stdout  # printed at the end too
    for header in ('| case | dtype | backend | output |', '| case | queries | backend | ms |',
                   '| variant | s / iter |', '| variant | frames / s |'):
        assert header in text
    assert '| sca | bf16 | triton_csr |' in text and '| tsa | 16 | triton |' in text


def test_budget_runs_out_items_are_skipped(tmp_path):
    result = run_gpu_check(tmp_path, '--smoke', '--budget-s', '1', '--sections', 'parity,train')
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert report['items'] and all(i['status'] == 'skipped' and i['note'] == 'time budget'
                                   for i in report['items'])
    assert {i['section'] for i in report['items']} == {'parity', 'train'}
    assert 'skipped: time budget' in (tmp_path / 'gpu_check.md').read_text()


def test_full_run_without_cuda_points_at_smoke(tmp_path):
    result = run_gpu_check(tmp_path, timeout=60)
    assert result.returncode != 0
    assert 'needs a CUDA device' in result.stderr and '--smoke' in result.stderr
    assert not (tmp_path / 'gpu_check.json').exists()


def python(code):
    return [sys.executable, '-c', code]


def test_benchmark_run_reads_the_last_json_line_and_catches_a_self_check_fallback():
    logged = []
    ok = gpu_check.run_benchmark(python(
        'import sys; print("[benchmark] train iteration 1/1: 0.5 s", file=sys.stderr); '
        'print("noise"); print(\'{"sec_per_iter": 0.5, "peak_mem_mb": 12.0}\')'),
        30, logged.append)
    assert ok == dict(status='done', sec_per_iter=0.5, peak_mem_mb=12.0)
    assert logged == ['  [benchmark] train iteration 1/1: 0.5 s']
    fell_back = gpu_check.run_benchmark(python(
        'import warnings; warnings.warn("occnet: msda_backend \'triton\' failed its '
        'self-check on cuda:0 (bfloat16): launch error", RuntimeWarning); '
        'print(\'{"sec_per_iter": 2.0}\')'), 30, logged.append)
    assert fell_back['status'] == 'error' and fell_back['sec_per_iter'] == 2.0
    assert "'triton' failed its self-check on cuda:0" in fell_back['note']
    crashed = gpu_check.run_benchmark(python('raise SystemExit("CUDA out of memory")'), 30,
                                      logged.append)
    assert crashed['status'] == 'error' and 'CUDA out of memory' in crashed['note']
    hung = gpu_check.run_benchmark(python('import time; time.sleep(30)'), 0.5, logged.append)
    assert hung['status'] == 'timeout'


def test_kernel_worker_survives_a_crash_a_hang_and_a_poisoned_context():
    worker = gpu_check.KernelWorker('cpu', smoke=True)
    result = gpu_check.RESULT
    worker.command = python('import sys; print("dying", file=sys.stderr); sys.exit(3)')
    died = worker.run(dict(section='parity'), timeout=30)
    assert died['status'] == 'error' and 'exit 3' in died['note'] and 'dying' in died['note']
    worker.command = python('import time; time.sleep(30)')
    assert worker.run(dict(section='parity'), timeout=0.5)['status'] == 'timeout'
    # answers each item with its process id, asking for a new process after a 'poison' item
    worker.command = python(
        'import json, os, sys\n'
        'for line in sys.stdin:\n'
        f'    print("unrelated output"); print({result!r} + json.dumps(dict(status="done",\n'
        '        pid=os.getpid(), restart=json.loads(line)["poison"])), flush=True)')
    first = worker.run(dict(section='parity', poison=True), timeout=30)
    second = worker.run(dict(section='parity', poison=False), timeout=30)
    third = worker.run(dict(section='parity', poison=False), timeout=30)
    worker.close()
    assert first['status'] == second['status'] == 'done' and 'restart' not in first
    assert first['pid'] != second['pid'] == third['pid']
