"""Evaluate occupancy predictions on disk against OpenScene or Occ3D-nuScenes labels.

    python tools/eval_occ.py --infos data/openscene_mini_val.pkl --pred-dir work_dirs/x/preds \
        [--out-json work_dirs/x/metrics.json] [--data-root data] [--skip-missing] [--ray-iou]
    python tools/eval_occ.py --dataset occ3d --data-root data/nuscenes \
        --infos data/nuscenes/occ_infos_temporal_val.pkl --pred-dir DIR --out-json FILE \
        [--ray-iou]

OpenScene (contract 4):

Reads `<pred-dir>/<token>.npz` (`semantics`, uint8 (200, 200, 16), 11 = free) for every labelled
frame of the infos, sums one confusion matrix over all frames (and one over camera-visible
voxels where `occ_invalid_path` files exist), prints the per-class table and writes the JSON.

Occ3D-nuScenes (contract 11; occnet/evaluation/occ3d_eval.py): predictions `semantics` uint8
(200, 200, 16), 0..17 (17 free); `miou` is the Occ3D protocol (camera-visible voxels,
classes 0-16), `ray_iou` SparseOcc's RayIoU (no mask). The infos may be the CVPR 2023
challenge's, BEVDet's or tools/create_occ3d_infos.py's; label paths start from --data-root
(the nuScenes root holding gts/).
"""
import argparse
import os
import sys

import numpy as np

from occnet.datasets.infos import DataError, load_infos, resolve
from occnet.datasets.labels import load_occupancy, load_visible_mask
from occnet.datasets.occ3d import load_occ3d_infos
from occnet.descriptions import OCC3D_NUSCENES, get_description
from occnet.evaluation import (format_table, load_flow_pair, load_prediction, summarize_split,
                               write_json, write_markdown)
from occnet.evaluation.occ3d_eval import evaluate_occ3d
from occnet.evaluation.occupancy_metrics import (RANGES, flow_error_sums, frame_confusions,
                                                 near_voxels, summarize_flow)
from occnet.evaluation.ray_iou import frame_ray_confusion, ray_iou_summary, scene_ray_origins
from occnet.geometry import sparse_to_dense
from occnet.progress import Progress

DATASETS = {'openscene': 'openscene', 'occ3d': OCC3D_NUSCENES.name,
            OCC3D_NUSCENES.name: OCC3D_NUSCENES.name}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='openscene', choices=sorted(DATASETS),
                        help="whose labels and protocol: 'openscene' (default) or 'occ3d'")
    parser.add_argument('--infos', required=True, help='pickled list of frame dicts')
    parser.add_argument('--pred-dir', required=True, help='folder of <token>.npz predictions')
    parser.add_argument('--out-json', help='where to write the metrics JSON')
    parser.add_argument('--data-root', help='folder that relative label paths start from '
                        '(default: the folder holding --infos)')
    parser.add_argument('--ray-iou', action='store_true',
                        help='also compute RayIoU (occnet/evaluation/ray_iou.py: rays from the '
                        'lidar origins of the frame and its scene neighbours, 1/2/4 m; on '
                        'Occ3D as SparseOcc defines it)')
    parser.add_argument('--ray-neighbours', type=int, default=2,
                        help='frames before and after each frame whose lidar origins cast rays')
    parser.add_argument('--skip-missing', action='store_true',
                        help='skip frames whose prediction or label file is missing, and '
                        'report how many, instead of stopping')
    return parser.parse_args()


def write_outputs(summary, out_json):
    print(format_table(summary))
    if out_json:
        write_json(summary, out_json)
        markdown = os.path.splitext(out_json)[0] + '.md'
        write_markdown(summary, markdown)
        print(f'metrics written to {out_json} and {markdown}')


def main_occ3d(args, data_root):
    try:
        frames = load_occ3d_infos(args.infos, OCC3D_NUSCENES.camera_names)
        summary = evaluate_occ3d(frames, data_root, args.pred_dir, args.ray_iou,
                                 args.skip_missing, Progress('eval_occ', 'frames'))
    except FileNotFoundError as err:
        sys.exit(f'error: {err} (pass --skip-missing to evaluate the other frames)')
    except (DataError, KeyError, ValueError) as err:
        sys.exit(f'error: {err}')
    if summary['num_frames_skipped']:
        print(f"[eval_occ] skipped {summary['num_frames_skipped']} of {len(frames)} frames "
              'with a missing file', file=sys.stderr)
    write_outputs(summary, args.out_json)


def main():
    args = parse_args()
    data_root = args.data_root or os.path.dirname(os.path.abspath(args.infos))
    if DATASETS[args.dataset] != 'openscene':
        return main_occ3d(args, data_root)
    try:
        infos = load_infos(args.infos)
    except DataError as err:
        sys.exit(f'error: {err}')
    frames = [info for info in infos if info.get('occ_gt_final_path')]
    if not frames:
        sys.exit(f'no frame in {args.infos} has `occ_gt_final_path`; nothing to evaluate')
    if len(frames) < len(infos):
        print(f'[eval_occ] {len(infos) - len(frames)} of {len(infos)} frames have no label '
              'path and are not evaluated', file=sys.stderr)

    desc = get_description('openscene')
    cm = np.zeros((len(RANGES), desc.num_classes, desc.num_classes), dtype=np.int64)
    cm_masked = np.zeros_like(cm)  # (3, C, C): all, near, far voxels
    near = near_voxels(dataset=desc)
    ray_origins = scene_ray_origins(infos, args.ray_neighbours, dataset=desc) \
        if args.ray_iou else None
    ray_counts = 0
    flow_sums = None
    num_frames = num_masked = 0
    skipped = []
    progress = Progress('eval_occ', 'frames')
    for done, info in enumerate(frames, start=1):
        token = info['token']
        invalid_path = info.get('occ_invalid_path')
        try:
            occ_sparse = load_occupancy(resolve(data_root, info['occ_gt_final_path']), token,
                                        dense=False)
            gt = sparse_to_dense(occ_sparse)
            visible = None if not invalid_path else load_visible_mask(
                resolve(data_root, invalid_path), token)
            pred = load_prediction(args.pred_dir, token)
        except (DataError, FileNotFoundError) as err:
            if not (args.skip_missing and isinstance(err, FileNotFoundError)):
                hint = ' (pass --skip-missing to evaluate the other frames)' if isinstance(
                    err, FileNotFoundError) else ''
                sys.exit(f'error: {err}{hint}')
            skipped.append(token)
            progress(done, len(frames))
            continue
        try:
            cm += frame_confusions(gt, pred, near=near, dataset=desc)
            if visible is not None:
                cm_masked += frame_confusions(gt, pred, mask=visible, near=near, dataset=desc)
                num_masked += 1
            if ray_origins is not None:
                ray_counts = ray_counts + frame_ray_confusion(gt, pred, ray_origins[token],
                                                              dataset=desc)
            frame_flow = load_flow_pair(args.pred_dir, info, data_root, occ_sparse)
            if frame_flow is not None:
                sums = flow_error_sums(gt, pred, *frame_flow, dataset=desc)
                flow_sums = sums if flow_sums is None else flow_sums + sums
        except ValueError as err:
            sys.exit(f'error: frame token {token}, prediction '
                     f'{os.path.join(args.pred_dir, token + ".npz")}: {err}')
        num_frames += 1
        progress(done, len(frames))

    if skipped:
        print(f'[eval_occ] skipped {len(skipped)} of {len(frames)} frames with a missing file '
              f'(first: {skipped[0]})', file=sys.stderr)
    if num_frames == 0:
        sys.exit('error: every frame was skipped; nothing to evaluate')
    summary = summarize_split(cm, cm_masked if num_masked else None, num_frames, num_masked,
                              dataset=desc)
    summary['num_frames_skipped'] = len(skipped)
    if flow_sums is not None:
        summary.update(summarize_flow(flow_sums))
    if ray_origins is not None:
        summary.update(ray_iou_summary(ray_counts, dataset=desc))
    write_outputs(summary, args.out_json)


if __name__ == '__main__':
    main()
