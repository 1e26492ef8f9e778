"""How much faster is forward projection than BEVFormer's encoder? Inference time of what each
full-scale model runs after its image neck (view transform or encoder, BEV encoder, head and
prediction), and of the whole model, at OpenScene's 8 x 960x540 input, on this machine.

    python benchmarks/post_neck_speed.py [--iters 5]
        [--models tiny flashocc flashocc_m0 flashocc_s32 fbocc]
        [--precision fp32|bf16] [--channels-last]

Models: `tiny` is configs/bevformer_occ/bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py,
`flashocc` configs/flashocc/flashocc_r50-fpn_8xb1-24e_openscene.py (stride-16 features, as
FlashOcc's M1), `flashocc_m0` configs/flashocc/flashocc-m0_r50-fpn_8xb1-24e_openscene.py
(FlashOcc's M0: 128 BEV channels after the BEV ResNet-FPN), `flashocc_s32` the M1 model
lifting tiny's own stride-32 features (the same image features as tiny), `fbocc`
configs/fbocc/fbocc_r50-fpn_8xb1-24e_openscene.py.
The inputs are tools/benchmark.py's synthetic batch: random images on the OpenScene-like
8-camera rig (so the spatial cross-attention sees the real number of visible pillars). The
neck features are computed once per model and reused, so the post-neck time leaves the
image side out; the whole-model time is one predict() call, images to voxel classes.
Random weights (no download). Single frames: tiny's video mode carries no previous BEV in
the first frame, which is what every timed call is. The last line is JSON with
`<model>_post_neck_s`, `<model>_whole_s`, for FlashOcc-style models the parts
(`<model>_view_transform_s`, `_bev_backbone_s`, `_head_s`), and `post_neck_ratio` /
`whole_ratio` of tiny over flashocc (`post_neck_ratio_flashocc_m0` and so on for the
others).
Every model runs in the same mode: `--precision bf16` runs each call under CPU bf16 autocast
(geometry stays fp32, as in training with --amp bf16), `--channels-last` builds the models
with model.channels_last=True (every 2D convolution channels-last).
"""
import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from mmengine.registry import init_default_scope

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
from benchmark import synthetic_batch  # noqa: E402  (the benchmark's inputs and rig)

from occnet.engine.launch import apply_runtime_options, load_config  # noqa: E402
from occnet.registry import MODELS  # noqa: E402

TINY = 'configs/bevformer_occ/bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py'
FLASHOCC = 'configs/flashocc/flashocc_r50-fpn_8xb1-24e_openscene.py'
FLASHOCC_M0 = 'configs/flashocc/flashocc-m0_r50-fpn_8xb1-24e_openscene.py'
STRIDE32 = {'model.img_backbone.out_indices': (3,), 'model.img_neck.in_channels': [2048],
            'model.img_neck.num_outs': 1}
MODEL_CONFIGS = dict(tiny=(TINY, {}), flashocc=(FLASHOCC, {}),
                     flashocc_m0=(FLASHOCC_M0, {}),
                     flashocc_s32=(FLASHOCC, STRIDE32),
                     fbocc=('configs/fbocc/fbocc_r50-fpn_8xb1-24e_openscene.py', {}))


def timed(fn, warmup, iters, precision='fp32'):
    """Median seconds of fn() after warm-up calls; each call enters its own autocast
    (precision_context), so the weights are cast every call, as in a serving loop."""
    def call():
        with precision_context(precision):
            fn()

    for _ in range(warmup):
        call()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def precision_context(precision):
    """The autocast of --precision: bf16 autocast on the CPU, or nothing for fp32."""
    if precision == 'bf16':
        return torch.autocast('cpu', dtype=torch.bfloat16)
    return contextlib.nullcontext()


def measure(name, warmup, iters, img_size, precision='fp32', channels_last=False):
    path, options = MODEL_CONFIGS[name]
    cfg = load_config(os.path.join(ROOT, path), {'model.img_backbone.weights': None,
                                                 'model.channels_last': channels_last,
                                                 **options})
    apply_runtime_options(cfg)
    init_default_scope('occnet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    data = model.data_preprocessor(synthetic_batch(1, 1, img_size), False)
    imgs, samples = data['inputs']['imgs'], data['data_samples']

    def whole():
        model._prev_frame = None
        model(**data, mode='predict')

    with torch.no_grad():
        whole_s = timed(whole, warmup, iters, precision)
        with precision_context(precision):  # bf16 neck features under bf16
            feats = model.extract_img_feats(imgs[:, -1])
        model.extract_img_feats = lambda _: feats  # the neck's output, computed once

        def post_neck():
            bev, context = model.encode_frame(imgs[:, -1], samples, -1)
            model.outputs(bev, context, samples)

        post_neck_s = timed(post_neck, warmup, iters, precision)
        parts = forward_projection_parts(model, feats, samples, imgs.shape[-2:], warmup,
                                         iters, precision)
    shapes = [tuple(f.shape[-3:]) for f in feats]
    print(f'{name:<13} post-neck {post_neck_s:7.2f} s   whole model {whole_s:7.2f} s   '
          f'neck levels (C, H, W) {shapes}' + ''.join(
              f'\n{"":<13} {part} {seconds:.2f} s' for part, seconds in parts.items()),
          flush=True)
    return post_neck_s, whole_s, parts


def forward_projection_parts(model, feats, samples, padded_hw, warmup, iters, precision):
    """Seconds of a FlashOcc-style encoder's parts: {'view_transform', 'bev_backbone',
    'head'} (depth net, lift and pooling; BEV ResNet-FPN; head and argmax), {} for other
    encoders."""
    encoder = model.bev_encoder
    if not hasattr(encoder, 'bev_backbone'):
        return {}
    device = feats[0].device
    lidar2img = torch.as_tensor(np.stack([s['lidar2img'][-1] for s in samples]),
                                dtype=torch.float32, device=device)
    image_hw = torch.as_tensor(np.stack([s['img_shape'] for s in samples]),
                               dtype=torch.float32, device=device)
    with precision_context(precision):  # each part's input as the model makes it
        bev_map, _ = encoder.view_transform(feats, lidar2img, image_hw, tuple(padded_hw))
        bev = encoder.bev_backbone(bev_map).flatten(2).transpose(1, 2)
    return dict(
        view_transform=timed(lambda: encoder.view_transform(feats, lidar2img, image_hw,
                                                            tuple(padded_hw)),
                             warmup, iters, precision),
        bev_backbone=timed(lambda: encoder.bev_backbone(bev_map), warmup, iters, precision),
        head=timed(lambda: model.occ_head.predict(model.occ_head(bev)), warmup, iters,
                   precision))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=5, help='timed calls (median)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--img-size', type=int, nargs=2, default=(960, 540),
                        metavar=('W', 'H'))
    parser.add_argument('--models', nargs='+', default=list(MODEL_CONFIGS),
                        choices=list(MODEL_CONFIGS))
    parser.add_argument('--precision', choices=('fp32', 'bf16'), default='fp32',
                        help='bf16: every model under CPU bf16 autocast')
    parser.add_argument('--channels-last', action='store_true',
                        help='every model with model.channels_last=True')
    args = parser.parse_args()
    result = {}
    for name in args.models:
        post_neck_s, whole_s, parts = measure(name, args.warmup, args.iters,
                                              tuple(args.img_size), args.precision,
                                              args.channels_last)
        result.update({f'{name}_post_neck_s': round(post_neck_s, 3),
                       f'{name}_whole_s': round(whole_s, 3),
                       **{f'{name}_{part}_s': round(sec, 3) for part, sec in parts.items()}})
    for other in ('flashocc', 'flashocc_m0', 'flashocc_s32', 'fbocc'):
        if 'tiny' in args.models and other in args.models:
            suffix = '' if other == 'flashocc' else f'_{other}'
            result[f'post_neck_ratio{suffix}'] = round(
                result['tiny_post_neck_s'] / result[f'{other}_post_neck_s'], 2)
            result[f'whole_ratio{suffix}'] = round(
                result['tiny_whole_s'] / result[f'{other}_whole_s'], 2)
    result.update(img_size=list(args.img_size), precision=args.precision,
                  channels_last=args.channels_last, threads=torch.get_num_threads(),
                  hardware=f'{os.cpu_count()}-core {platform.machine()} CPU, Python '
                  f'{platform.python_version()}, torch {torch.__version__}',
                  date=time.strftime('%Y-%m-%d'))
    print(json.dumps(result))


if __name__ == '__main__':
    main()
