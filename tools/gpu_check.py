"""One command for one GPU: occnet's acceptance run on a single CUDA card, in under 8 minutes
on an H100/H200-class card (a wall-clock budget, --budget-s, is enforced).

    python tools/gpu_check.py [--budget-s 450] [--out-dir work_dirs/gpu_check]
        [--sections parity,speed,train,infer]
    TRITON_INTERPRET=1 python tools/gpu_check.py --smoke --device cpu   # the same code, tiny

Items, in the order they run:
    device  GPU, driver, torch / triton / CUDA versions, compute capability (the CPU in smoke)
    parity  every deformable attention backend that runs on the device against the 'pytorch'
            reference run in float64 on the same inputs rounded to the dtype: the output and
            the gradients of value, sampling locations and attention weights, fp32 and bf16, at
            the baseline's SCA and TSA shapes (benchmarks/msda.py). Error = max |got - ref| /
            max |ref| per tensor; passes at 1e-4 in fp32 (sums in another order give ~1e-6)
            and 2e-2 in bf16 (one bf16 rounding of an input or output is up to 4e-3).
    speed   fp32 forward + backward per backend at the same shapes: median ms, speed-up over
            'pytorch' (grid_sample), peak memory growth; and 'triton' with other tiles
            (queries per program x warps, gpu_check_kernels.TILES), to choose the default
    train   the baseline config (tools/benchmark.py, one process per variant): s / iteration
            and peak memory for fp32 (the 'auto' attention backend), cp+bf16, bf16, cp
            (activation checkpointing), then compile and reference (grid_sample attention)
    infer   frames per second of the baseline, fp32 and bf16 (run before compile/reference)
Goals: triton at least 3x faster than pytorch at SCA shapes; cp+bf16 training peak at most
4710 MB (4.6 GB; max_memory_allocated, weights included). The kernels run in a child process
(tools/gpu_check_kernels.py) that a crash, a hang or a broken CUDA context takes down alone.
gpu_check.json and gpu_check.md are rewritten after every item, so a killed run keeps what it
measured; items the budget cannot fit are recorded as "skipped: time budget".
--smoke runs everything at tiny shapes on the demo config (CPU is fine; the Triton backends
run there under TRITON_INTERPRET=1), so this script is tested without a GPU.
Exit status 1 when a parity check fails or an item errors; the files are written anyway.

gpu_check.json: ok (no item failed or errored), finished, smoke, command, started, budget_s,
elapsed_s, commit, train_config, tolerances {dtype: max relative error}, device {name, torch,
triton, cuda, capability, driver, backends {name: null when it runs here, else why not}},
goals [{goal, value, unit, met, status}], items [{id, section, status: passed | failed |
done | error | skipped, note, ...}]. Parity items add case, dtype, backend, tolerance and
errors {output | grad_value | grad_locations | grad_weights: {max_abs, max_rel}}; speed items
case, backend, queries, ms, repeats, peak_mb, speedup (pytorch ms / ms); train and infer
items variant, command, sec_per_iter, samples_per_sec (frames per second), peak_mem_mb,
max_memory_allocated_mb.
"""
import argparse
import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from collections import deque

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.msda import CASES  # noqa: E402
from benchmarks.train_options import BASELINE, VARIANTS  # noqa: E402
from gpu_check_kernels import RESULT, TILES, TOLERANCES  # noqa: E402
from gpu_check_report import fmt, goals, markdown, status_text  # noqa: E402
from occnet.atomic_file import replace_atomically  # noqa: E402

DEMO = 'configs/bevformer_occ/bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py'
SECTIONS = ('parity', 'speed', 'train', 'infer')
# gpu_check variant -> benchmarks/train_options.py variant (its options and --cfg-options)
TRAIN_VARIANTS = {'fp32': 'msda', 'cp+bf16': 'cp+bf16', 'bf16': 'bf16', 'cp': 'cp',
                  'compile': 'compile', 'reference': 'plain'}
INFER_VARIANTS = {'fp32': 'msda', 'bf16': 'bf16'}
SMOKE_TRAIN_VARIANTS = ('fp32', 'cp+bf16', 'compile')
# tools/benchmark.py's random batches carry no camera mask. Compiling the demo's encoder and
# head takes ~2 min on 2 CPU cores with inductor and ~30 s with the 'eager' backend (dynamo's
# tracing of the encoder); the head alone with 'eager' ~8 s. tests/test_speed_options.py
# checks that compiling gives the same function.
SMOKE_CFG = ['model.occ_head.use_camera_mask=False']
SMOKE_COMPILE_CFG = ["model.compile_modules=['occ_head']", 'model.compile_options.backend=eager']
# seconds an item needs at least (skipped below that) and at most (then it is stopped), for a
# full run and for smoke
NEED_S = {'kernel': (5, 2), 'train': (45, 10), 'infer': (30, 10), 'compile': (150, 40)}
CAP_S = {'kernel': (120, 120), 'train': (180, 60), 'infer': (120, 60), 'compile': (300, 120)}
# the worker tests the kernels themselves: no self-check that would swap in the reference
WORKER_ENV = dict(PYTHONWARNINGS='ignore', OCCNET_MSDA_SELF_CHECK='0')


def pump(stream, sink):
    """Call sink(line) for each line of a child's stream, then sink(None), in a thread."""
    def run():
        for line in stream:
            sink(line.rstrip('\n'))
        sink(None)
    threading.Thread(target=run, daemon=True).start()


class KernelWorker:
    """The worker process, started on demand: a crash, a hang or a poisoned CUDA context
    costs only the item that caused it; the next item gets a fresh process."""

    def __init__(self, device, smoke):
        self.command = [sys.executable, os.path.join(ROOT, 'tools', 'gpu_check_kernels.py'),
                        '--device', device] + (['--smoke'] if smoke else [])
        self.proc = None

    def run(self, item, timeout):
        if self.proc is not None and self.proc.poll() is not None:  # ended after its answer
            self.proc = None
        if self.proc is None:
            self.results, self.stderr = queue.Queue(), deque(maxlen=20)
            self.proc = subprocess.Popen(self.command, cwd=ROOT, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, env=dict(os.environ, **WORKER_ENV))
            results, stderr = self.results, self.stderr  # this process's, not a later one's
            pump(self.proc.stdout, lambda line: results.put(line and line[len(RESULT):])
                 if line is None or line.startswith(RESULT) else None)
            pump(self.proc.stderr, lambda line: line is not None and stderr.append(line))
        try:
            self.proc.stdin.write(json.dumps(item) + '\n')
            self.proc.stdin.flush()
            line = self.results.get(timeout=timeout)
        except BrokenPipeError:  # it died starting up; its stdout ends with None
            line = self.results.get(timeout=10)
        except queue.Empty:
            self.close()
            return dict(status='timeout', note=f'stopped after {timeout:.0f} s')
        if line is None:
            code = self.proc.wait()
            self.proc = None
            return dict(status='error', note=f'the worker died (exit {code}): '
                        + ' | '.join(list(self.stderr)[-5:]))
        result = json.loads(line)
        if result.pop('restart', False):
            self.close()
        return result

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def benchmark_command(args, mode, variant):
    """tools/benchmark.py for a train_options.py variant: the baseline, or in smoke the demo
    config with one iteration of 128x72 images."""
    options, cfg_options = VARIANTS[variant]
    config, cfg_options = (DEMO, SMOKE_CFG + cfg_options) if args.smoke else (BASELINE,
                                                                             list(cfg_options))
    if args.smoke:
        iters, warmup = 1, 0
    else:
        iters, warmup = (10, 3) if mode == 'infer' else (5, 3 if variant == 'compile' else 2)
    command = [sys.executable, 'tools/benchmark.py', config, '--mode', mode, '--device',
               args.device, '--iters', str(iters), '--warmup', str(warmup), *options]
    if args.smoke:
        command += ['--img-size', '128', '72']
        cfg_options += SMOKE_COMPILE_CFG if variant == 'compile' else []
    return command + (['--cfg-options', *cfg_options] if cfg_options else [])


def run_benchmark(command, timeout, log):
    """Run tools/benchmark.py, echoing its progress lines; its last stdout line is JSON."""
    stdout, stderr, fallbacks, done = [], deque(maxlen=20), [], threading.Event()
    # RuntimeWarnings shown: a Triton backend failing its self-check warns with one
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ,
                                                PYTHONWARNINGS='ignore,default::RuntimeWarning'))
    pump(proc.stdout, lambda line: done.set() if line is None else stdout.append(line))

    def on_stderr(line):
        if line is not None:
            stderr.append(line)
            if line.startswith('[benchmark]'):
                log('  ' + line)
            if 'failed its self-check' in line:
                fallbacks.append(line.split('occnet: ', 1)[-1].strip())
    pump(proc.stderr, on_stderr)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return dict(status='timeout', note=f'stopped after {timeout:.0f} s')
    done.wait(10)
    if code:
        return dict(status='error', note=f'exit {code}: ' + ' | '.join(list(stderr)[-5:]))
    try:
        result = json.loads(stdout[-1])
    except (IndexError, ValueError):
        return dict(status='error', note='no JSON line at the end of its output: '
                    + ' | '.join(stdout[-3:]))
    keys = ('sec_per_iter', 'samples_per_sec', 'peak_mem_mb', 'max_memory_allocated_mb',
            'msda_backend', 'amp', 'img_size', 'iters')
    measured = {k: result[k] for k in keys if k in result}
    if fallbacks:  # the numbers are the reference's, not the Triton backend's
        return dict(measured, status='error', note='ran on the fallback: ' + fallbacks[0])
    return dict(measured, status='done')


def plan(args, backends):
    """The items to run after `device`, in order (dicts with section, name and settings)."""
    cases = list(CASES)
    kernel = [b for b in backends if b != 'pytorch']
    items = []
    if 'parity' in args.sections:
        items += [dict(section='parity', case=c, dtype=d, backend=b)
                  for c in cases for d in TOLERANCES for b in kernel]
    if 'speed' in args.sections:
        tiles = [f'triton@{t}' for t in TILES] if 'triton' in kernel else []
        items += [dict(section='speed', case=c, backend=b)
                  for c in cases for b in ['pytorch'] + kernel + tiles]
    train = SMOKE_TRAIN_VARIANTS if args.smoke else TRAIN_VARIANTS
    late = [v for v in ('compile', 'reference') if v in train]
    if 'train' in args.sections:
        items += [dict(section='train', variant=v) for v in train if v not in late]
    if 'infer' in args.sections:
        items += [dict(section='infer', variant=v) for v in INFER_VARIANTS]
    if 'train' in args.sections:
        items += [dict(section='train', variant=v) for v in late]
    for item in items:
        item['id'] = '/'.join(str(item[k]) for k in ('section', 'case', 'dtype', 'backend',
                                                     'variant') if k in item)
    return items


def git_commit():
    try:
        def git(*a):
            return subprocess.run(['git', *a], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        return git('rev-parse', '--short', 'HEAD') + (' + local changes'
                                                      if git('status', '--porcelain') else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def driver_version():
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else 'unknown'
    except (OSError, subprocess.SubprocessError, IndexError):
        return 'unknown'


class Report:
    """The results so far, written to gpu_check.json and gpu_check.md after every item."""

    def __init__(self, args):
        self.out_dir, self.start = args.out_dir, time.monotonic()
        self.data = dict(ok=True, finished=False, smoke=args.smoke,
                         command=shlex.join(['python', 'tools/gpu_check.py'] + sys.argv[1:]),
                         started=time.strftime('%Y-%m-%d %H:%M:%S %Z'), budget_s=args.budget_s,
                         elapsed_s=0.0, commit=git_commit(), device={},
                         train_config=DEMO if args.smoke else BASELINE,
                         tolerances=TOLERANCES, goals=[], items=[])

    def elapsed(self):
        return time.monotonic() - self.start

    def log(self, text):
        print(f'[gpu_check {self.elapsed():5.0f} s] {text}', file=sys.stderr, flush=True)

    def add(self, item):
        items = self.data['items']
        items.append(item)
        if item['section'] == 'speed' and item.get('ms'):
            ref = next((i for i in items if i['id'] == f"speed/{item['case']}/pytorch"
                        and i.get('ms')), None)
            item['speedup'] = ref['ms'] / item['ms'] if ref else None
        detail = ''
        if item['section'] == 'parity' and 'errors' in item:
            worst = [e['max_rel'] for e in item['errors'].values()]
            detail = f" (max rel error {fmt(max(worst) if None not in worst else None, '.1e')})"
        elif item.get('ms'):
            detail = f" ({item['ms']:.2f} ms)"
        elif item.get('sec_per_iter'):
            detail = f" ({item['sec_per_iter']:.3f} s / iter)"
        self.log(f"{item['id']}: {status_text(item)}{detail}")
        self.write()

    def write(self, finished=False):
        data = self.data
        data.update(finished=finished, elapsed_s=round(self.elapsed(), 1),
                    ok=not any(i['status'] in ('failed', 'error') for i in data['items']),
                    goals=goals(data['items'], data['smoke']))
        for name, text in (('gpu_check.json', json.dumps(data, indent=1) + '\n'),
                           ('gpu_check.md', markdown(data))):
            replace_atomically(os.path.join(self.out_dir, name),
                               lambda f, t=text: f.write(t.encode()))


def run_items(args, report):
    deadline = time.monotonic() + args.budget_s
    kernels = KernelWorker(args.device, args.smoke)
    report.log(f'device {args.device}, budget {args.budget_s:.0f} s, out {args.out_dir}')
    device = kernels.run(dict(section='device'), timeout=CAP_S['kernel'][args.smoke])
    device['driver'] = driver_version() if args.device == 'cuda' else None
    report.data['device'] = device
    report.write()
    if device['status'] != 'done':
        report.add(dict(device, section='device', id='device'))
        return
    report.log(f"{device['name']}, torch {device['torch']}, triton {device['triton']}")
    backends = [b for b, why in device['backends'].items() if why is None]
    skipped = {b: why for b, why in device['backends'].items() if why is not None}
    for item in plan(args, backends + list(skipped)):
        kind = ('kernel' if item['section'] in ('parity', 'speed') else
                'compile' if item.get('variant') == 'compile' else item['section'])
        remaining = deadline - time.monotonic()
        if item.get('backend', '').partition('@')[0] in skipped:
            item.update(status='skipped', note=skipped[item['backend'].partition('@')[0]])
        elif remaining < NEED_S[kind][args.smoke]:
            item.update(status='skipped', note='time budget')
        else:
            timeout = min(CAP_S[kind][args.smoke], remaining)
            if kind == 'kernel':
                result = kernels.run(item, timeout)
            else:
                kernels.close()  # the kernel items are done: free the worker's GPU memory
                variants = TRAIN_VARIANTS if item['section'] == 'train' else INFER_VARIANTS
                command = benchmark_command(args, item['section'], variants[item['variant']])
                item['command'] = shlex.join(['python'] + command[1:])
                if args.smoke and item['variant'] == 'compile':
                    item['note'] = "smoke: occ_head only, torch.compile backend 'eager'"
                result = run_benchmark(command, timeout, report.log)
            if result['status'] == 'timeout':  # out of budget: skipped; over its cap: error
                result['status'] = 'skipped' if timeout < CAP_S[kind][args.smoke] else 'error'
                result['note'] = ('time budget, ' if result['status'] == 'skipped'
                                  else 'timed out, ') + result['note']
            item.update(result)
        report.add(item)
    kernels.close()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--budget-s', type=float, default=450,
                        help='wall-clock budget; items that do not fit are skipped')
    parser.add_argument('--out-dir', default='work_dirs/gpu_check')
    parser.add_argument('--sections', default=','.join(SECTIONS),
                        help=f'comma-separated subset of {",".join(SECTIONS)}')
    parser.add_argument('--smoke', action='store_true',
                        help='tiny shapes and the demo config, to check the script on CPU')
    parser.add_argument('--device', choices=('cuda', 'cpu'),
                        help='default: cuda when available (choose the card with '
                        'CUDA_VISIBLE_DEVICES)')
    args = parser.parse_args()
    args.sections = args.sections.split(',')
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f'unknown --sections {sorted(unknown)}; choose from {SECTIONS}')
    return args


def main():
    args = parse_args()
    args.device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('error: --device cuda but torch sees no CUDA device (torch '
                 f'{torch.__version__}, CUDA build {torch.version.cuda})')
    if args.device == 'cpu' and not args.smoke:
        sys.exit('error: the GPU check needs a CUDA device (--device cuda; torch sees '
                 f'{torch.cuda.device_count()}). To check this script on CPU, run: '
                 'TRITON_INTERPRET=1 python tools/gpu_check.py --smoke --device cpu')
    args.out_dir = os.path.abspath(args.out_dir)
    report = Report(args)
    run_items(args, report)
    report.write(finished=True)
    print(markdown(report.data))
    report.log(f"{'ok' if report.data['ok'] else 'FAILED'}; wrote "
               f'{os.path.join(args.out_dir, "gpu_check.json")} and gpu_check.md')
    return 0 if report.data['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
