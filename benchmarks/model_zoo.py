"""The numbers of docs/model_zoo.md: parameters of every shipped config and CPU seconds per
training / inference iteration of its reduced variant.

    python benchmarks/model_zoo.py [--iters 3]

Parameters are counted on the full model as configured (pretrained weights not loaded).
The reduced variant is the one tests/test_configs.py runs: same backbone, DCN, FPN levels,
head and losses, but 16 channels, a 25x25 BEV, one encoder layer and 8 cameras of 64x32
pixels, queue of 2 frames, batch 1. Its time says how the structures compare on a CPU, not
how fast the full model trains. Prints a markdown table, then one JSON line.
"""
import argparse
import glob
import json
import os
import platform
import sys
import time

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))


def input_size(cfg):
    """(W, H) the test pipeline feeds, padded to a multiple of 32, from the release's
    1920x1080 images (320x180 for the synthetic demo data `make demo` writes), after the
    loader's decode_scale and any resize."""
    synthetic = 'synthetic' in cfg.test_dataloader.dataset.data_root
    width, height = (320, 180) if synthetic else (1920, 1080)
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'LoadMultiViewImages' and step.get('decode_scale', 1.0) != 1.0:
            width, height = round(width * step['decode_scale']), round(height *
                                                                        step['decode_scale'])
        if step['type'] == 'ResizeMultiViewImages':
            width, height = round(width * step['scale']), round(height * step['scale'])
    return -(-width // 32) * 32, -(-height // 32) * 32


def seconds_per_iter(model, batch_fn, mode, iters):
    """Mean seconds of `iters` iterations after one warm-up."""
    times = []
    for i in range(iters + 1):
        data = model.data_preprocessor(batch_fn(), mode == 'loss')
        start = time.perf_counter()
        if mode == 'loss':
            losses = model(**data, mode='loss')
            sum(losses.values()).backward()
        else:
            with torch.no_grad():
                model(**data, mode='predict')
        if i:
            times.append(time.perf_counter() - start)
    return sum(times) / len(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=3)
    args = parser.parse_args()
    import occnet.datasets  # noqa: F401  (registers the parts)
    import occnet.models  # noqa: F401
    from occnet.registry import MODELS
    from test_configs import batch_for, shrunk_model_cfg
    init_default_scope('occnet')
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    for path in sorted(glob.glob(os.path.join(REPO, 'configs', 'bevformer_occ', '*.py'))):
        cfg = Config.fromfile(path)
        cfg.model.img_backbone.weights = None
        full = MODELS.build(cfg.model)
        params = sum(p.numel() for p in full.parameters()) / 1e6
        del full
        torch.manual_seed(0)
        reduced = MODELS.build(shrunk_model_cfg(path))
        reduced.train()
        train_s = seconds_per_iter(reduced, lambda: batch_for(reduced), 'loss', args.iters)
        reduced.eval()
        infer_s = seconds_per_iter(reduced, lambda: batch_for(reduced, num_frames=1),
                                   'predict', args.iters)
        enc = cfg.model.bev_encoder
        head = cfg.model.occ_head.type + (' + FlowHead' if cfg.model.get('flow_head') else '')
        rows.append(dict(config=os.path.relpath(path, REPO), params_m=round(params, 1),
                         input=input_size(cfg), bev=(enc.bev_h, enc.bev_w),
                         layers=enc.num_layers, levels=enc.num_levels,
                         head=head, reduced_train_s=round(train_s, 2),
                         reduced_infer_s=round(infer_s, 2)))
        print(f'[model_zoo] {rows[-1]}', file=sys.stderr, flush=True)
    print('| config | params (M) | input (W x H) | BEV | layers x levels | head | '
          'reduced train s/iter | reduced infer s/iter |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| `{r['config']}` | {r['params_m']} | {r['input'][0]} x {r['input'][1]} | "
              f"{r['bev'][0]} x {r['bev'][1]} | {r['layers']} x {r['levels']} | {r['head']} | "
              f"{r['reduced_train_s']} | {r['reduced_infer_s']} |")
    print(json.dumps(dict(rows=rows, cpu=platform.processor() or platform.machine(),
                          threads=torch.get_num_threads(), torch=torch.__version__)))


if __name__ == '__main__':
    main()
