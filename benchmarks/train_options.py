"""Each speed / memory option of the baseline config against the plain path, in one run:
training seconds per iteration and peak memory from tools/benchmark.py, one process each.

    python benchmarks/train_options.py [--config CONFIG] [--iters 2] [--warmup 1]
        [--variants plain,msda,cp,bf16,cp+bf16] [-- extra tools/benchmark.py options]

Variants:
    plain     the grid_sample reference deformable attention, fp32, no checkpointing
    msda      + the automatic deformable attention backend (Triton on CUDA, sparse on CPU)
    cp        + activation checkpointing of the backbone stages and the encoder layers
    bf16      + bf16 autocast (--amp bf16)
    cp+bf16   + both
    compile   + torch.compile of the encoder and the head (slow to compile on CPU)
Prints a table with ratios to `plain` and, last, one JSON line.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = 'configs/bevformer_occ/bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py'
CHECKPOINTING = ['model.img_backbone.with_cp=True', 'model.bev_encoder.with_cp=True']
VARIANTS = {
    'plain': (['--msda-backend', 'pytorch'], []),
    'msda': ([], []),
    'cp': ([], CHECKPOINTING),
    'bf16': (['--amp', 'bf16'], []),
    'cp+bf16': (['--amp', 'bf16'], CHECKPOINTING),
    'compile': ([], ["model.compile_modules=['bev_encoder','occ_head']"]),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=BASELINE)
    parser.add_argument('--iters', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--variants', default='plain,msda,cp,bf16,cp+bf16')
    parser.add_argument('extra', nargs='*', help='passed on to tools/benchmark.py')
    args = parser.parse_args()
    results = {}
    for name in args.variants.split(','):
        options, cfg_options = VARIANTS[name]
        command = [sys.executable, 'tools/benchmark.py', args.config, '--iters',
                   str(args.iters), '--warmup', str(args.warmup), *options, *args.extra]
        if cfg_options:
            command += ['--cfg-options', *cfg_options]
        print(f'[train_options] {name}: {" ".join(command[1:])}', file=sys.stderr, flush=True)
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                             env=dict(os.environ, PYTHONWARNINGS='ignore'))
        if out.returncode:
            sys.exit(f'{name} failed:\n{out.stderr[-3000:]}')
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results.get('plain') or next(iter(results.values()))
    print(f'{"variant":<9} {"s/iter":>8} {"speed-up":>9} {"peak MB":>9} {"memory":>7}')
    for name, r in results.items():
        speedup = base['sec_per_iter'] / r['sec_per_iter']
        print(f'{name:<9} {r["sec_per_iter"]:>8.2f} {speedup:>8.2f}x '
              f'{r["peak_mem_mb"]:>9.0f} {r["peak_mem_mb"] / base["peak_mem_mb"]:>7.2f}')
    print(json.dumps(dict(config=args.config, device=base['device'], results=results)))


if __name__ == '__main__':
    main()
