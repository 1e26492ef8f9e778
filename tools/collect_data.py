"""Collect OpenScene metadata into train / val infos (contract 3 of shared/DESIGN.md).

    python tools/collect_data.py --data-root data/openscene --split mini --out-dir data/openscene
"""
import argparse
import os
import pickle
import sys
import time

from occnet.datasets.collect import collect
from occnet.datasets.infos import DataError


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-root', required=True,
                        help='folder holding openscene-v1.1/ (and openscene-v1.0/ for labels)')
    parser.add_argument('--split', default='mini', help='mini, trainval or test')
    parser.add_argument('--out-dir', required=True, help='where the infos pickles go')
    parser.add_argument('--val-ratio', type=float, default=0.2,
                        help='fraction of logs held out for validation')
    parser.add_argument('--seed', type=int, default=0, help='seed of the log split')
    return parser.parse_args()


def main():
    args = parse_args()
    start = time.time()

    def progress(done, total):
        if done == total or done % 50 == 0:
            elapsed = time.time() - start
            eta = elapsed / done * (total - done)
            print(f'\rlogs {done}/{total}  elapsed {elapsed:.0f}s  eta {eta:.0f}s', end='',
                  flush=True)
    try:
        train, val, stats = collect(args.data_root, args.split, args.val_ratio, args.seed,
                                    progress)
    except DataError as err:
        sys.exit(f'\nerror: {err}')
    print()
    os.makedirs(args.out_dir, exist_ok=True)
    for name, frames in (('train', train), ('val', val)):
        path = os.path.join(args.out_dir, f'openscene_{args.split}_{name}.pkl')
        tmp = path + '.tmp'
        with open(tmp, 'wb') as f:
            pickle.dump(frames, f, protocol=4)
        os.replace(tmp, path)
        print(f'wrote {path} ({len(frames)} frames)')
    print(f"{'logs':>6} {'scenes':>7} {'frames':>7} {'labelled':>9} {'unlabelled':>11}"
          f" {'train logs/frames':>18} {'val logs/frames':>16}")
    print(f"{stats['logs']:>6} {stats['scenes']:>7} {stats['frames']:>7} "
          f"{stats['labelled']:>9} {stats['unlabelled']:>11} "
          f"{stats['train_logs']:>9}/{stats['train_frames']:<8} "
          f"{stats['val_logs']:>7}/{stats['val_frames']:<8}")
    if stats['unlabelled']:
        print(f"note: {stats['unlabelled']} frames have no v1.0 occupancy label and were left "
              f"out of the infos")


if __name__ == '__main__':
    main()
