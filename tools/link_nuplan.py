"""Build OpenScene's sensor_blobs tree as symlinks into a nuPlan sensor download.

    python tools/link_nuplan.py --nuplan-sensor-root /data/nuplan-v1.1/sensor_blobs \
        --data-root data/openscene --split mini [--with-lidar] [--dry-run] [--force]

Reads DATA_ROOT/openscene-v1.1/meta_datas/<split>/*.pkl and, for every camera image (and with
--with-lidar every merged point cloud) a frame names, makes
DATA_ROOT/openscene-v1.1/sensor_blobs/<split>/<log>/<CAM>/<token>.jpg a symlink to the same
relative path under the nuPlan folder (absolute target). Existing files and correct links are
left alone, so running it again is safe; a link pointing elsewhere is a conflict unless --force.
Exits 1 when a file is missing in nuPlan or a link conflicts, 0 otherwise.
"""
import argparse
import sys

from occnet.datasets.collect import read_log_list
from occnet.datasets.infos import DataError
from occnet.datasets.nuplan_link import (CONFLICT, LINKED, MISSING, PRESENT, REPLACED,
                                         link_split, missing_hint, sensor_blobs_dir)
from occnet.evaluation import write_json
from occnet.progress import Progress



def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--nuplan-sensor-root', required=True,
                        help="nuPlan's sensor_blobs folder (holds <log_name>/CAM_F0/...)")
    parser.add_argument('--data-root', required=True, help='folder holding openscene-v1.1/')
    parser.add_argument('--split', default='mini', help='mini, trainval or test')
    parser.add_argument('--with-lidar', action='store_true',
                        help='also link <log>/MergedPointCloud/<token>.pcd')
    parser.add_argument('--dry-run', action='store_true',
                        help='create nothing; report what would be linked')
    parser.add_argument('--force', action='store_true',
                        help='replace links that point somewhere else (real files are never '
                             'touched)')
    parser.add_argument('--logs', help='text file with one log name per line: link only these')
    parser.add_argument('--out-json', help='write the report here')
    return parser.parse_args()


def print_report(report, force):
    """The counts, then the missing and conflicting files (first few) with what to do."""
    would = 'would be ' if report['dry_run'] else ''
    print(f"{report['logs']} logs, {report['frames']} frames, {report['files']} files "
          f"under {sensor_blobs_dir(report['data_root'], report['split'])}")
    rows = ((f'{would}linked', LINKED), ('already present', PRESENT),
            (f'{would}replaced', REPLACED), ('conflicts', CONFLICT),
            ('missing in nuPlan', MISSING))
    for label, key in rows:
        print(f'  {label + ":":<22}{report[key]:>10,}')
    if report[MISSING]:
        print(f'{report[MISSING]} files not linked: {missing_hint(report)}')
        print(f'first {len(report["missing_examples"])} missing:')
        for path in report['missing_examples']:
            print(f'  {path}')
        print('missing per log:')
        for log_name, count in sorted(report['missing_per_log'].items()):
            print(f'  {log_name}: {count}')
    if report[CONFLICT]:
        fix = ('they are not symlinks; move them away' if force
               else 'pass --force to replace the links')
        print(f'conflicts ({fix}), first {len(report["conflict_examples"])}:')
        for line in report['conflict_examples']:
            print(f'  {line}')


def main():
    args = parse_args()
    try:
        logs = read_log_list(args.logs) if args.logs else None
        report = link_split(args.nuplan_sensor_root, args.data_root, args.split,
                            with_lidar=args.with_lidar, force=args.force,
                            dry_run=args.dry_run, logs=logs,
                            progress=Progress('link_nuplan', 'logs'))
    except (DataError, OSError) as err:
        sys.exit(f'\nerror: {err}')
    print_report(report, args.force)
    if args.out_json:
        write_json(report, args.out_json)
        print(f'report written to {args.out_json}')
    sys.exit(1 if report[MISSING] or report[CONFLICT] else 0)


if __name__ == '__main__':
    main()
