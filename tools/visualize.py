"""Render ground truth beside prediction (top-down, class colours) for frames with predictions,
and their flow (direction as hue, speed as saturation) where labels and predictions have it.

    python tools/visualize.py --infos data/openscene-synthetic/openscene_mini_val.pkl \
        --pred-dir work_dirs/demo/test/predictions --out-dir work_dirs/demo/renders
"""
import argparse
import os
import sys

import numpy as np

from occnet.constants import CAMERA_NAMES
from occnet.datasets.infos import DataError, load_infos, resolve
from occnet.datasets.labels import load_occupancy
from occnet.datasets.transforms.loading import read_jpeg
from occnet.evaluation import load_flow_pair, load_prediction
from occnet.geometry import lidar2img_matrix, sparse_to_dense
from occnet.visualization import save_flow_gt_vs_pred, save_gt_vs_pred
from occnet.visualization.cameras import save_camera_overlays


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--infos', required=True, help='infos pickle (list of frame dicts)')
    parser.add_argument('--pred-dir', required=True, help='folder of <token>.npz predictions')
    parser.add_argument('--out-dir', required=True, help='where the PNGs go')
    parser.add_argument('--data-root', help='folder relative label paths start from '
                        '(default: the folder holding --infos)')
    parser.add_argument('--num-frames', type=int, default=4,
                        help='frames to render, spread evenly over the infos')
    parser.add_argument('--scale', type=int, default=3, help='pixels per voxel')
    parser.add_argument('--cameras', action='store_true',
                        help='also draw the prediction projected onto the 8 camera images')
    return parser.parse_args()


def main():
    args = parse_args()
    data_root = args.data_root or os.path.dirname(os.path.abspath(args.infos))
    try:
        frames = [f for f in load_infos(args.infos) if f.get('occ_gt_final_path')]
    except DataError as err:
        sys.exit(f'error: {err}')
    picks = np.unique(np.linspace(0, len(frames) - 1, args.num_frames).round().astype(int))
    os.makedirs(args.out_dir, exist_ok=True)
    for i in picks:
        frame = frames[i]
        token = frame['token']
        try:
            occ_sparse = load_occupancy(resolve(data_root, frame['occ_gt_final_path']), token,
                                        dense=False)
            gt = sparse_to_dense(occ_sparse)
            pred = load_prediction(args.pred_dir, token)
        except (DataError, FileNotFoundError) as err:
            sys.exit(f'error: {err}')
        path = os.path.join(args.out_dir, f'{frame.get("scene_name", "frame")}_{token}.png')
        title = f'{frame.get("log_name", "")}  frame {frame.get("frame_idx", "")}  {token}'
        save_gt_vs_pred(gt, pred, path, title=title, scale=args.scale)
        print(f'wrote {path}')
        if args.cameras:
            camera_path = path[:-len('.png')] + '_cameras.png'
            images = [read_jpeg(resolve(data_root, frame['cams'][cam]['data_path']), token, cam)
                      for cam in CAMERA_NAMES]
            lidar2imgs = [lidar2img_matrix(frame['cams'][cam]) for cam in CAMERA_NAMES]
            save_camera_overlays(images, lidar2imgs, pred, camera_path)
            print(f'wrote {camera_path}')
        flows = load_flow_pair(args.pred_dir, frame, data_root, occ_sparse)
        if flows is not None:
            flow_path = path[:-len('.png')] + '_flow.png'
            save_flow_gt_vs_pred(gt, flows[0], pred, flows[1], flow_path, scale=args.scale)
            print(f'wrote {flow_path}')


if __name__ == '__main__':
    main()
