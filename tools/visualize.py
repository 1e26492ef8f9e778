"""Render ground truth beside prediction for frames with predictions: top-down class maps with
an error map, their flow (direction as hue, speed as saturation) where labels and predictions
have it, and optionally a 3D chase-camera view, the cameras with the prediction projected,
and a whole scene as an animated GIF or MP4. Classes, colours, grid and cameras are those of
--dataset (occnet/descriptions.py); so is how the infos and labels are read
(occnet.datasets.readers): OpenScene's collected infos with sparse labels and flow, or any
Occ3D-nuScenes infos flavour with gts/<scene>/<token>/labels.npz (no flow; --data-root the
nuScenes root, the cameras projected through each frame's ego -> image matrix).

    python tools/visualize.py --infos data/openscene-synthetic/openscene_mini_val.pkl \
        --pred-dir work_dirs/demo/test/predictions --out-dir work_dirs/demo/renders \
        --chase --cameras --scene first
    python tools/visualize.py --dataset occ3d_nuscenes --data-root data/nuscenes \
        --infos data/nuscenes/occ_infos_temporal_val.pkl --pred-dir work_dirs/occ3d/predictions \
        --out-dir work_dirs/occ3d/renders --cameras
"""
import argparse
import os
import sys

import numpy as np

from occnet.datasets.infos import DataError, resolve
from occnet.datasets.labels import load_occupancy
from occnet.datasets.readers import grid2img_matrices, label_path, read_dense_label, read_frames
from occnet.datasets.transforms.loading import read_jpeg
from occnet.descriptions import DESCRIPTIONS, get_description
from occnet.evaluation import load_flow_pair, load_prediction
from occnet.progress import Progress
from occnet.visualization import save_flow_gt_vs_pred, save_gt_vs_pred
from occnet.visualization.animation import write_animation
from occnet.visualization.cameras import save_camera_overlays
from occnet.visualization.voxel3d import (ChaseCamera, render_chase_gt_vs_pred,
                                          save_chase_gt_vs_pred)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--infos', required=True,
                        help="infos pickle of --dataset (OpenScene's list of frame dicts, or "
                        'Occ3D infos of any flavour)')
    parser.add_argument('--pred-dir', required=True, help='folder of <token>.npz predictions')
    parser.add_argument('--out-dir', required=True, help='where the PNGs go')
    parser.add_argument('--dataset', choices=sorted(DESCRIPTIONS), default='openscene',
                        help='the dataset the labels and predictions follow (classes, '
                        'colours, grid, cameras; default: openscene)')
    parser.add_argument('--data-root', help='folder relative label paths start from '
                        '(default: the folder holding --infos)')
    parser.add_argument('--num-frames', type=int, default=4,
                        help='frames to render, spread evenly over the infos')
    parser.add_argument('--scale', type=int, default=3, help='pixels per voxel')
    parser.add_argument('--chase', action='store_true',
                        help='also render a 3D view from a chase camera (<name>_3d.png)')
    parser.add_argument('--cameras', action='store_true',
                        help='also draw the prediction projected onto the camera images')
    parser.add_argument('--scene', action='append', default=[], metavar='NAME',
                        help="animate every labelled frame of this scene (its scene_name, or "
                        "'first' for the first scene of the infos); repeatable")
    parser.add_argument('--animation-format', choices=('gif', 'mp4'), default='gif')
    parser.add_argument('--fps', type=float, default=4.0, help='animation frames per second')
    parser.add_argument('--animation-width', type=int, default=400,
                        help='width in pixels of each of the 3 panels of an animation frame')
    return parser.parse_args()


def load_pair(frame, data_root, pred_dir, dataset='openscene'):
    """(dense gt, dense prediction) (X, Y, Z) of one frame (readers.read_dense_label)."""
    gt, _ = read_dense_label(frame, data_root, dataset)
    return gt, load_prediction(pred_dir, frame['token'])


def load_flows(frame, data_root, pred_dir, dataset='openscene'):
    """(gt flow, predicted flow) (X, Y, Z, 2) where the frame has a flow label (OpenScene)
    and its prediction a flow, else None."""
    if not frame.get('flow_gt_final_path'):
        return None
    occ_sparse = load_occupancy(resolve(data_root, frame['occ_gt_final_path']), frame['token'],
                                dense=False, dataset=dataset)
    return load_flow_pair(pred_dir, frame, data_root, occ_sparse)


def frame_title(frame):
    where = frame.get('log_name') or frame.get('scene_name') or ''
    return f'{where}  frame {frame.get("frame_idx", "")}  {frame["token"]}'


def render_frame(frame, args, data_root):
    """Every requested still of one frame; prints each path written."""
    dataset = args.dataset
    gt, pred = load_pair(frame, data_root, args.pred_dir, dataset)
    stem = os.path.join(args.out_dir, f'{frame.get("scene_name", "frame")}_{frame["token"]}')
    save_gt_vs_pred(gt, pred, stem + '.png', title=frame_title(frame), scale=args.scale,
                    dataset=dataset)
    written = [stem + '.png']
    if args.chase:
        save_chase_gt_vs_pred(gt, pred, stem + '_3d.png', title=frame_title(frame),
                              dataset=dataset)
        written.append(stem + '_3d.png')
    if args.cameras:
        cameras = get_description(dataset).camera_names
        images = [read_jpeg(resolve(data_root, frame['cams'][cam]['data_path']),
                            frame['token'], cam) for cam in cameras]
        written.append(save_camera_overlays(images, grid2img_matrices(frame, dataset), pred,
                                            stem + '_cameras.png', dataset=dataset))
    flows = load_flows(frame, data_root, args.pred_dir, dataset)
    if flows is not None:
        written.append(save_flow_gt_vs_pred(gt, flows[0], pred, flows[1], stem + '_flow.png',
                                            scale=args.scale, dataset=dataset))
    for path in written:
        print(f'wrote {path}')


def scene_frames(frames, name):
    """Labelled frames of scene `name` ('first': the first scene in the infos) by timestamp."""
    if name == 'first':
        name = frames[0].get('scene_name')
    chosen = [f for f in frames if f.get('scene_name') == name]
    if not chosen:
        names = sorted({str(f.get('scene_name')) for f in frames})
        raise DataError(f"no labelled frame has scene_name '{name}'; scenes here: "
                        f"{', '.join(names[:10])}{' ...' if len(names) > 10 else ''}")
    return name, sorted(chosen, key=lambda f: f.get('timestamp') or 0)


def render_scene(frames, name, args, data_root):
    """One animation of a scene: the chase-camera gt | prediction | errors of each frame."""
    name, chosen = scene_frames(frames, name)
    width = args.animation_width
    camera = ChaseCamera(size=(width, int(round(width * 0.625))))
    progress = Progress('visualize', f'scene {name}: frames')
    images = []
    for i, frame in enumerate(chosen):
        gt, pred = load_pair(frame, data_root, args.pred_dir, args.dataset)
        title = f'{name}  {i + 1}/{len(chosen)}  {frame["token"]}'
        images.append(render_chase_gt_vs_pred(gt, pred, title, camera, args.dataset))
        progress(i + 1, len(chosen))
    path = os.path.join(args.out_dir, f'{name}.{args.animation_format}')
    write_animation(images, path, fps=args.fps)
    print(f'wrote {path} ({len(images)} frames)')


def main():
    args = parse_args()
    data_root = args.data_root or os.path.dirname(os.path.abspath(args.infos))
    try:
        frames = [f for f in read_frames(args.infos, args.dataset) if label_path(f)]
        if not frames:
            raise DataError(f'{args.infos} has no labelled frames (no occ_gt_final_path or '
                            'occ_gt_path)')
        picks = np.unique(np.linspace(0, len(frames) - 1, args.num_frames).round().astype(int))
        os.makedirs(args.out_dir, exist_ok=True)
        for i in picks:
            render_frame(frames[i], args, data_root)
        for name in args.scene:
            render_scene(frames, name, args, data_root)
    except (DataError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
