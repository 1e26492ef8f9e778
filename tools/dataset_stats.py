"""Frames, voxels per class, class frequencies and class weights of OpenScene or
Occ3D-nuScenes infos files.

    python tools/dataset_stats.py --data-root data/openscene \
        --infos data/openscene/openscene_mini_train.pkl data/openscene/openscene_mini_val.pkl \
        --out work_dirs/stats_mini.json [--max-frames 500] [--workers 8]
    python tools/dataset_stats.py --data-root data/openscene --split mini --out stats.json
    python tools/dataset_stats.py --dataset occ3d_nuscenes --data-root data/nuscenes \
        --infos data/nuscenes/occ_infos_temporal_train.pkl \
        data/nuscenes/occ_infos_temporal_val.pkl --out work_dirs/stats_occ3d.json

Per infos file (group = its file name without .pkl) or, with --split, for all frames of the
raw metadata: logs, scenes, frames, labelled frames, voxels of classes 0..10 and 11 = free over
the labelled frames (also over camera-visible voxels where invalid-voxel files exist),
frequencies and class weights w_c = 1 / ln(1.02 + f_c) (0 for classes that never occur).
--max-frames reads the labels of an evenly spaced subset of each group's labelled frames.
With --dataset occ3d_nuscenes the infos are any Occ3D flavour (CVPR 2023 challenge, BEVDet,
tools/create_occ3d_infos.py), the labels gts/<scene>/<token>/labels.npz under the nuScenes
root (classes 0..16 and 17 = free), the visible voxels those of their `mask_camera`.
"""
import argparse
import os
import sys
import time

from occnet.datasets.infos import DataError
from occnet.datasets.stats import (CLASS_WEIGHT_FORMULA, format_group_table, stat_class_names,
                                   group_name, group_stats, read_infos, split_frames)
from occnet.descriptions import DESCRIPTIONS
from occnet.evaluation import write_json
from occnet.progress import Progress


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-root', required=True,
                        help='folder that relative paths in the infos start from')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--infos', nargs='+', help='infos pickles from tools/collect_data.py '
                                                   '(Occ3D: any flavour occnet reads)')
    source.add_argument('--split', help='read the raw OpenScene metadata of this split instead')
    parser.add_argument('--out', help='write the statistics JSON here')
    parser.add_argument('--dataset', default='openscene', choices=sorted(DESCRIPTIONS),
                        help="whose labels the infos hold (occnet/descriptions.py)")
    parser.add_argument('--max-frames', type=int,
                        help='read labels of at most this many evenly spaced labelled frames '
                             'per group (default: all)')
    parser.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1),
                        help='processes reading label files (default: min(8, CPUs))')
    args = parser.parse_args()
    if args.split and args.dataset != 'openscene':
        parser.error(f'--split reads raw OpenScene metadata; give {args.dataset} infos with '
                     '--infos')
    if args.max_frames is not None and args.max_frames < 1:
        parser.error(f'--max-frames must be >= 1, got {args.max_frames}')
    return args


def load_groups(args):
    """[(group name, source, frame dicts)] from --infos files or the --split metadata."""
    if args.split:
        frames = split_frames(args.data_root, args.split,
                              Progress('dataset_stats', f'{args.split}: logs'))
        return [(args.split, os.path.join(args.data_root, 'openscene-v1.1', 'meta_datas',
                                          args.split), frames)]
    names = [group_name(path) for path in args.infos]
    if len(set(names)) < len(names):
        raise DataError(f'--infos files share a file name ({names}); groups are named after '
                        f'the file, so give them distinct names')
    return [(name, path, read_infos(path, args.dataset))
            for name, path in zip(names, args.infos)]


def main():
    args = parse_args()
    report = {'data_root': args.data_root, 'dataset': args.dataset,
              'class_names': list(stat_class_names(args.dataset)),
              'class_weight_formula': CLASS_WEIGHT_FORMULA, 'max_frames': args.max_frames,
              'groups': {}}
    start = time.time()
    try:
        for name, source, frames in load_groups(args):
            stats = group_stats(frames, args.data_root, args.max_frames, args.workers,
                                Progress('dataset_stats', f'{name}: frames'),
                                dataset=args.dataset)
            report['groups'][name] = {'source': source, **stats}
            print(format_group_table(name, stats) + '\n')
    except DataError as err:
        sys.exit(f'\nerror: {err}')
    if args.out:
        write_json(report, args.out)
        print(f'statistics written to {args.out}')
    print(f'class weights: {CLASS_WEIGHT_FORMULA}')
    print(f'done in {time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
