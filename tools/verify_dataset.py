r"""Check an OpenScene or Occ3D-nuScenes download against its metadata and say exactly what
is wrong with it.

    python tools/verify_dataset.py --data-root data/openscene --split mini [--out-json r.json]
    python tools/verify_dataset.py --data-root data/openscene --split mini --with-lidar
    python tools/verify_dataset.py --infos data/openscene/openscene_mini_val.pkl \
        --data-root data/openscene
    python tools/verify_dataset.py --dataset occ3d_nuscenes --data-root data/nuscenes \
        --infos data/nuscenes/occ_infos_temporal_val.pkl [--with-lidar]
    python tools/verify_dataset.py --md5 downloads/md5sum.txt      # archives only

Checks exactly the files the metadata names (sensor_blobs is never listed): unreadable
metadata pickles, frames with bad metadata, missing or truncated JPEGs (--decode: decode them
all), missing or malformed occupancy / flow / invalid-voxel files, with --with-lidar the point
clouds (MergedPointCloud/<token>.pcd: exist, parse, x y z, at least one point), and with --md5
the downloaded archives. Occ3D-nuScenes (--dataset occ3d_nuscenes, or --infos naming Occ3D
labels: the CVPR 2023 challenge's, BEVDet's or tools/create_occ3d_infos.py's infos, with
--data-root the nuScenes root): the 6 images of every frame, its
gts/<scene>/<token>/labels.npz (semantics, mask_lidar, mask_camera: uint8 (200, 200, 16),
classes 0..17) and with --with-lidar its samples/LIDAR_TOP/*.pcd.bin (5 float32 per point).
Exit code: 0 all good (frames without a label are only a warning), 1 problems found, 2 usage
error.
"""
import argparse
import json
import os
import sys
import time

from occnet.datasets.infos import DataError
from occnet.datasets.checksums import verify_archives
from occnet.datasets.verify import CHECKS, Report, check_fix, verify_infos, verify_split
from occnet.descriptions import DESCRIPTIONS
from occnet.progress import Progress


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-root',
                        help='folder holding openscene-v1.1/ and openscene-v1.0/ (for --infos: '
                             'the folder its relative paths start from)')
    parser.add_argument('--split', default='mini', help='mini, trainval or test')
    parser.add_argument('--infos', help='check a collected infos pickle (tools/collect_data.py) '
                                        'instead of the raw metadata of --split, or Occ3D '
                                        'infos')
    parser.add_argument('--dataset', choices=sorted(DESCRIPTIONS),
                        help='whose layout the files follow (occnet/descriptions.py; default: '
                             'occ3d_nuscenes for --infos naming Occ3D labels, else openscene); '
                             'occ3d_nuscenes needs --infos, --data-root the nuScenes root')
    parser.add_argument('--md5', help='checksum file in md5sum format listing the archives')
    parser.add_argument('--archive-dir', help='folder of the archives (default: the checksum '
                                              "file's folder)")
    parser.add_argument('--skip-images', action='store_true', help='do not check images')
    parser.add_argument('--skip-labels', action='store_true', help='do not check label files')
    parser.add_argument('--with-lidar', action='store_true',
                        help='also check every point cloud the metadata names (exists, parses '
                             'as PCD, has x y z and at least one point)')
    parser.add_argument('--decode', action='store_true',
                        help='fully decode every image with OpenCV (slow); default: check the '
                             'JPEG start and end markers, which catches truncated files')
    parser.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1),
                        help='threads reading files (default: min(8, CPUs))')
    parser.add_argument('--show', type=int, default=10,
                        help='offending paths printed per failing check')
    parser.add_argument('--out-json', help='write the full report (counts and paths) here')
    args = parser.parse_args()
    if args.data_root is None and args.md5 is None:
        parser.error('give --data-root (with --split or --infos) and/or --md5')
    if args.infos and args.data_root is None:
        parser.error('--infos needs --data-root: the folder its relative paths start from')
    if args.data_root is not None and not os.path.isdir(args.data_root):
        parser.error(f'--data-root {args.data_root} is not a folder')
    if args.dataset == 'occ3d_nuscenes' and not args.infos:
        parser.error('--dataset occ3d_nuscenes reads its infos: give --infos (e.g. '
                     'occ_infos_temporal_val.pkl, or tools/create_occ3d_infos.py output)')
    if args.infos and not os.path.isfile(args.infos):
        parser.error(f'--infos {args.infos} not found (tools/collect_data.py writes it)')
    if args.md5 and not os.path.isfile(args.md5):
        parser.error(f'--md5 {args.md5} not found')
    if args.workers < 1 or args.show < 0:
        parser.error('--workers must be >= 1 and --show >= 0')
    return args


def usage_error(message):
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def gib(num_bytes):
    return f'{num_bytes / 2**30:.2f} GiB'


def print_table(report):
    groups = {'data'} if 'data_root' in report.info else set()
    groups |= {'lidar'} if report.info.get('with_lidar') else set()
    groups |= {'archives'} if 'md5' in report.info else set()
    dataset = report.info.get('dataset', 'openscene')
    if 'data' in groups:
        print(f'dataset: {dataset}')
    print(f"{'check':<58}{'count':>8}")
    for check, spec in CHECKS.items():
        if spec.group not in groups or dataset not in spec.datasets:
            continue
        title = spec.title if spec.is_error else f'{spec.title} (warning)'
        print(f'{title:<58}{report.counts[check]:>8}')
    checked, parts = report.checked, []
    if 'data' in groups:
        groups_of_frames = (f"{checked['scenes']} scenes" if 'scenes' in checked else
                            f"{checked['logs']} logs")
        parts.append(f"{groups_of_frames}, {checked['frames']} frames, "
                     f"{checked['images']} images, {checked['labelled_frames']} labelled frames "
                     f"({checked['label_files']} label files)")
    if 'lidar' in groups:
        parts.append(f"{checked['point_clouds']} point clouds")
    if 'archives' in groups:
        parts.append(f"{checked['archives']} archives ({gib(checked['archive_bytes'])})")
    print(f"checked: {', '.join(parts)}")


def print_issues(report, show):
    dataset = report.info.get('dataset', 'openscene')
    for check, spec in CHECKS.items():
        count = report.counts[check]
        if not count:
            continue
        kind = 'error' if spec.is_error else 'warning'
        share = (f" ({100.0 * count / max(report.checked['frames'], 1):.1f}% of frames)"
                 if check == 'frame_unlabelled' else '')
        print(f"\n{kind}: {spec.title}: {count}{share}\n  {'fix' if spec.is_error else 'note'}: "
              f'{check_fix(check, dataset)}')
        for issue in report.listed(check)[:show]:
            if issue.path in issue.reason:
                print(f'  {issue.reason}')
            else:
                token = f' (token {issue.token})' if issue.token else ''
                print(f'  {issue.path}{token}: {issue.reason}')
        if count > show:
            print(f'  ... and {count - show} more (--show N, or --out-json for all)')


def problems(report):
    return f"{report.checked['frames']} frames, {report.num_errors} problems"


def main():
    args = parse_args()
    start = time.time()
    report = Report()
    options = dict(workers=args.workers, images=not args.skip_images,
                   labels=not args.skip_labels, decode=args.decode, lidar=args.with_lidar)
    try:
        if args.md5:
            verify_archives(args.md5, report, args.archive_dir, args.workers,
                            Progress('verify', 'md5', gib))
        if args.infos:
            verify_infos(args.infos, args.data_root, report, dataset=args.dataset,
                         progress=Progress('verify', 'frames', detail=lambda: problems(report)),
                         **options)
        elif args.data_root is not None:
            verify_split(args.data_root, args.split, report,
                         progress=Progress('verify', 'logs', detail=lambda: problems(report)),
                         **options)
    except DataError as err:
        usage_error(err)
    print_table(report)
    print_issues(report, args.show)
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(report.to_dict(), f, indent=1)
        print(f'\nreport written to {args.out_json}')
    plural = '' if report.num_errors == 1 else 's'
    verdict = 'OK' if report.ok else f'FAILED: {report.num_errors} problem{plural}'
    print(f'\n{verdict} ({time.time() - start:.1f} s)')
    sys.exit(0 if report.ok else 1)


if __name__ == '__main__':
    main()
