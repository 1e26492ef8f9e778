"""Show what the data pipeline feeds the model, after augmentation, for a few samples: the 8
camera images with the labels projected through the augmented lidar2img (a label that does not
sit on its object means the geometry and the images were augmented differently), the front
camera of each history slot, the top-down labels and the sample's metadata.

    python tools/browse_dataset.py CONFIG --split train --num-samples 4 --out-dir work_dirs/browse
    python tools/browse_dataset.py CONFIG --indices 0 17 --cfg-options \
        train_dataloader.dataset.data_root=data/openscene-synthetic/

Writes <out-dir>/<split>_<index>_<token>.png per sample.
"""
import argparse
import os
import sys

import numpy as np
from mmengine.config import DictAction
from mmengine.registry import init_default_scope

from occnet.datasets.infos import DataError
from occnet.engine.launch import load_config
from occnet.progress import Progress
from occnet.registry import DATASETS
from occnet.visualization.pipeline_view import render_pipeline_sample
from occnet.visualization.topdown import write_rgb


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', choices=('train', 'val', 'test'), default='train',
                        help="which dataloader's dataset and pipeline (default: train)")
    parser.add_argument('--indices', type=int, nargs='+', help='dataset indices to show')
    parser.add_argument('--num-samples', type=int, default=4,
                        help='without --indices: this many, spread evenly over the dataset')
    parser.add_argument('--out-dir', default='work_dirs/browse', help='where the PNGs go')
    parser.add_argument('--seed', type=int, default=0, help='seeds the random augmentation')
    parser.add_argument('--camera-width', type=int, default=320,
                        help='pixels per camera tile')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_dataloader.dataset.data_root=')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'occnet'))
    np.random.seed(args.seed)
    try:
        dataset = DATASETS.build(cfg[f'{args.split}_dataloader']['dataset'])
    except (DataError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')
    size = len(dataset)
    indices = args.indices if args.indices is not None else np.unique(
        np.linspace(0, size - 1, args.num_samples).round().astype(int)).tolist()
    bad = [i for i in indices if not 0 <= i < size]
    if bad:
        sys.exit(f'error: index {bad[0]} is outside the {args.split} dataset (0..{size - 1})')
    progress = Progress('browse', 'samples')
    for done, index in enumerate(indices):
        item = dataset[index]
        sample = item['data_samples']
        image = render_pipeline_sample(item['inputs']['imgs'].numpy(),
                                       np.asarray(sample['lidar2img']), sample,
                                       args.camera_width, dataset=dataset.metainfo)
        path = os.path.join(args.out_dir, f'{args.split}_{index}_{sample.get("token")}.png')
        write_rgb(path, image)
        print(f'wrote {path}')
        progress(done + 1, len(indices))


if __name__ == '__main__':
    main()
