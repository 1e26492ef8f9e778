"""Collect OpenScene metadata into train / val infos (contract 3 of shared/DESIGN.md).

    python tools/collect_data.py --data-root data/openscene --split mini --out-dir data/openscene

Reads DATA_ROOT/openscene-v1.1/meta_datas/<split>/*.pkl (or, without v1.1, the v1.0 layout),
joins the v1.0 occupancy labels by frame token and writes OUT/openscene_<split>_{train,val}.pkl.
Logs are split with a seeded permutation: the same seed gives the same split, and no log is in
both files. Frames without a label are counted and left out unless --keep-unlabelled.
"""
import argparse
import os
import sys
import time

from occnet.datasets.collect import (collect_logs, read_log_list, split_logs, split_stats,
                                     write_chunks)
from occnet.datasets.infos import DataError
from occnet.progress import Progress


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-root', required=True,
                        help='folder holding openscene-v1.1/ (and openscene-v1.0/ for labels)')
    parser.add_argument('--split', default='mini', help='mini, trainval or test')
    parser.add_argument('--out-dir', required=True, help='where the infos pickles go')
    parser.add_argument('--val-ratio', type=float, default=0.2,
                        help='fraction of logs held out for validation (0: all in train)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the log split')
    parser.add_argument('--logs', help='text file with one log name per line: keep only these')
    parser.add_argument('--map-location', nargs='+',
                        help='keep only logs from these maps, e.g. us-nv-las-vegas-strip')
    parser.add_argument('--full-infos', action='store_true',
                        help='keep every metadata key (anns, traffic lights, ...); default: '
                             'only what training needs (with the lidar_path)')
    parser.add_argument('--keep-unlabelled', action='store_true',
                        help='keep frames without an occupancy label (label paths None)')
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                        help='processes reading the log pickles')
    parser.add_argument('--skip-bad', action='store_true',
                        help='leave out frames with bad metadata (NaN can_bus, missing '
                             'cameras...) and count them, instead of stopping')
    return parser.parse_args()


def print_summary(stats):
    header = f"{'':<7}{'logs':>7}{'scenes':>8}{'frames':>9}{'labelled':>10}{'unlabelled':>12}"
    print(header)
    for name in ('all', 'train', 'val'):
        row = stats[name]
        print(f"{name:<7}{row['logs']:>7}{row['scenes']:>8}{row['frames']:>9}"
              f"{row['labelled']:>10}{row['unlabelled']:>12}")
    unlabelled = stats['all']['unlabelled']
    if unlabelled:
        share = 100.0 * unlabelled / max(stats['all']['frames'], 1)
        what = 'kept, with empty label paths' if stats['kept_unlabelled'] else 'left out'
        print(f'note: {unlabelled} frames ({share:.1f}%) have no v1.0 occupancy label; '
              f'they are {what}')
    if stats['bad']:
        print(f"skipped {stats['bad']} frames with bad metadata, e.g.:")
        for line in stats['bad_examples'][:5]:
            print(f'  {line}')


def main():
    args = parse_args()
    start = time.time()
    try:
        logs = read_log_list(args.logs) if args.logs else None
        results = collect_logs(
            args.data_root, args.split, logs=logs,
            map_locations=set(args.map_location) if args.map_location else None,
            slim=not args.full_infos, keep_unlabelled=args.keep_unlabelled,
            skip_bad=args.skip_bad, workers=args.workers, progress=Progress('collect', 'logs'))
    except DataError as err:
        sys.exit(f'\nerror: {err}')
    train_logs, val_logs = split_logs(results, args.val_ratio, args.seed)
    stats = split_stats(results, train_logs, val_logs)
    if not stats['train']['frames'] and not stats['val']['frames']:
        sys.exit(f'error: no frames left in {args.data_root} split {args.split} after the '
                 f'filters (--logs / --map-location) and without the unlabelled frames '
                 f'(a split without labels, e.g. test, needs --keep-unlabelled)')
    if args.val_ratio > 0 and not stats['val']['frames']:
        print(f'warning: the {len(val_logs)} validation logs have no labelled frames; '
              f'try another --seed', file=sys.stderr)
    stats['kept_unlabelled'] = args.keep_unlabelled
    os.makedirs(args.out_dir, exist_ok=True)
    for name, names in (('train', train_logs), ('val', val_logs)):
        path = os.path.join(args.out_dir, f'openscene_{args.split}_{name}.pkl')
        write_chunks(path, [results[log]['chunk'] for log in names])
        print(f'wrote {path} ({stats[name]["frames"]} frames of {len(names)} logs)')
    print_summary(stats)
    print(f'done in {time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
