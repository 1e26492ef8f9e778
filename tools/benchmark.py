"""Seconds per iteration and peak memory of a config's model, training or inference (contract 6).

    python tools/benchmark.py CONFIG [--mode train|infer] [--iters N] [--warmup N]
        [--amp bf16|fp16] [--img-size W H] [--batch-size B] [--msda-backend NAME]
        [--[no-]cudnn-benchmark] [--cfg-options model.bev_encoder.with_cp=True ...]

The batches are random images of --img-size (default 960x540, the baseline's input) on the
8 cameras of the OpenScene-like synthetic rig, so the spatial cross-attention sees the real
number of visible pillars, and random labels; training runs the config's whole queue
(queue_length frames, the history ones without gradient) and its optimiser. Data loading
is not included (see benchmarks/input_pipeline.py). Peak memory is the peak during the
timed iterations (after the warm-up ones, whose one-off work such as cuDNN's algorithm search
it leaves out) minus what was in use before the first iteration (model, inputs): from
torch.cuda.max_memory_allocated on CUDA, from the resident-set high-water mark on CPU. So it
counts activations, gradients and optimiser state, not the weights; on CUDA
max_memory_allocated_mb is the absolute peak (weights included), what has to fit on the GPU.
cuDNN's autotuning follows the config's env_cfg.cudnn_benchmark unless --[no-]cudnn-benchmark
says otherwise. A CUDA out-of-memory error ends the run with the options that cut memory.
The last line printed is JSON with sec_per_iter, samples_per_sec, peak_mem_mb,
max_memory_allocated_mb (null on CPU) and device.
"""
import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from occnet.datasets.synthetic.rig import make_rig
from occnet.datasets.transforms.image import padded_shape
from occnet.descriptions import get_description
from occnet.engine.amp import configure_amp
from occnet.engine.launch import apply_runtime_options, load_config
from occnet.engine.memory_advice import out_of_memory_advice
from occnet.geometry import lidar2img_matrix
from occnet.models.bev_encoders.encoder import CAN_BUS_DIMS
from occnet.peak_memory import peak_growth_mb, reset_peak
from occnet.registry import MODELS


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--mode', choices=('train', 'infer'), default='train')
    parser.add_argument('--iters', type=int, default=5, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations first')
    parser.add_argument('--amp', choices=('bf16', 'fp16'), help='mixed precision')
    parser.add_argument('--img-size', type=int, nargs=2, default=(960, 540),
                        metavar=('W', 'H'), help='network input per camera, before padding')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--msda-backend', help='override the config: auto, cpu, triton, '
                        'pytorch')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cudnn-benchmark', action=argparse.BooleanOptionalAction,
                        help="cuDNN's per-shape algorithm search (default: the config's "
                        'env_cfg.cudnn_benchmark)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def depth_stride(cfg):
    """The stride of the train pipeline's DepthMapsFromPoints, or None without one."""
    pipeline = cfg.train_dataloader.dataset.get('pipeline') or []
    return next((step.get('stride', 16) for step in pipeline
                 if str(step.get('type')).endswith('DepthMapsFromPoints')), None)


def synthetic_batch(batch_size, num_frames, img_size, seed=0, depth_stride=None,
                    pad_size_divisor=32, dataset='openscene'):
    """Data in the dataset's format: uint8 images (T, N, 3, H, W) per sample and the sample
    dicts the model reads (the synthetic rig's projections for the dataset's N cameras,
    identity ego motion, zero CAN-bus vectors, random labels on its grid, every voxel seen
    by a camera and, with depth_stride, random LiDAR depth maps (N, H_pad / stride,
    W_pad / stride) with a return in a third of the cells)."""
    rng = np.random.default_rng(seed)
    desc = get_description(dataset)
    width, height = img_size
    rig = make_rig(rng, (width, height), desc)
    num_cams = len(desc.camera_names)
    lidar2img = np.stack([lidar2img_matrix(rig[cam]) for cam in desc.camera_names])
    samples, imgs = [], []
    for b in range(batch_size):
        labels = rng.integers(0, desc.num_classes, desc.grid_shape, dtype=np.uint8)
        samples.append(dict(
            token=f'bench{b}', prev_token=None, img_shape=(height, width),
            lidar2img=np.tile(lidar2img, (num_frames, 1, 1, 1)),
            cur2prev=np.tile(np.eye(4), (num_frames, 1, 1)),
            queue_valid=np.ones(num_frames, dtype=bool),
            can_bus=np.zeros((num_frames, CAN_BUS_DIMS), dtype=np.float32),
            voxel_semantics=torch.from_numpy(labels),
            mask_camera=torch.ones(desc.grid_shape, dtype=torch.bool)))
        if depth_stride:
            rows, cols = (size // depth_stride
                          for size in padded_shape((height, width), pad_size_divisor))
            depth = rng.uniform(1, 45, (num_cams, rows, cols)).astype(np.float32)
            depth[rng.random(depth.shape) > 1 / 3] = 0
            samples[-1]['depth_maps'] = torch.from_numpy(depth)
        imgs.append(torch.from_numpy(rng.integers(0, 256, (num_frames, num_cams, 3,
                                                           height, width), dtype=np.uint8)))
    return dict(inputs=dict(imgs=imgs), data_samples=samples)


def measure(args, cfg):
    """Build the model and run --warmup + --iters steps on a synthetic batch; returns the
    timed iterations' seconds, the peak memory growth (MB) and, on CUDA, the absolute peak
    of allocated memory (MB, None on CPU)."""
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(args.device)
    train = args.mode == 'train'
    num_frames = cfg.train_dataloader.dataset.get('queue_length', 1) if train else 1
    batch = synthetic_batch(args.batch_size, num_frames, args.img_size,
                            depth_stride=depth_stride(cfg) if train else None,
                            dataset=cfg.model.get('dataset', 'openscene'))
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper) if train else None
    autocast = torch.autocast(args.device.split(':')[0], dtype=torch.bfloat16
                              if args.amp == 'bf16' else torch.float16, enabled=bool(args.amp))

    def step():
        data = model.data_preprocessor(batch, train)
        if train:
            model.train()
            with optim_wrapper.optim_context(model):
                losses = model(**data, mode='loss')
            optim_wrapper.update_params(sum(losses.values()))
        else:
            model.eval()
            model._prev_frame = None
            with torch.no_grad(), autocast:
                model(**data, mode='predict')

    on_cuda = args.device.startswith('cuda')
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    baseline = reset_peak(args.device)
    times = []
    for i in range(args.warmup + args.iters):
        sync()
        if i == args.warmup and i > 0:  # the peak of the timed iterations only (no cuDNN
            reset_peak(args.device)      # search), still against the memory before warm-up
        start = time.perf_counter()
        step()
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
        print(f'[benchmark] {args.mode} iteration {i + 1}/{args.warmup + args.iters}: '
              f'{time.perf_counter() - start:.3f} s', file=sys.stderr, flush=True)
    max_allocated = torch.cuda.max_memory_allocated(args.device) / 2 ** 20 if on_cuda else None
    return times, peak_growth_mb(args.device, baseline), max_allocated


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    if args.msda_backend:
        cfg.msda_backend = args.msda_backend
    apply_runtime_options(cfg)
    init_default_scope(cfg.get('default_scope', 'occnet'))
    try:
        configure_amp(cfg, args.amp, args.device.split(':')[0])
    except ValueError as err:
        sys.exit(f'error: {err}')
    cudnn_benchmark = (bool((cfg.get('env_cfg') or {}).get('cudnn_benchmark', False))
                       if args.cudnn_benchmark is None else args.cudnn_benchmark)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    with out_of_memory_advice(cfg, 'train' if args.mode == 'train' else 'infer',
                              ('--batch-size B', args.batch_size),
                              ('--img-size W H', '{} {}'.format(*args.img_size))):
        times, peak_mem_mb, max_allocated_mb = measure(args, cfg)
    sec = statistics.median(times)
    device = (torch.cuda.get_device_name() if args.device.startswith('cuda')
              else f'{platform.machine()} CPU, {torch.get_num_threads()} threads')
    print(json.dumps(dict(sec_per_iter=sec, samples_per_sec=args.batch_size / sec,
                          peak_mem_mb=peak_mem_mb, max_memory_allocated_mb=max_allocated_mb,
                          device=device, mode=args.mode, amp=args.amp,
                          img_size=list(args.img_size), batch_size=args.batch_size,
                          iters=args.iters, msda_backend=cfg.get('msda_backend', 'auto'),
                          cudnn_benchmark=cudnn_benchmark)))


if __name__ == '__main__':
    main()
