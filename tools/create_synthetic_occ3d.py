"""Write a synthetic dataset in the Occ3D-nuScenes layout under a nuScenes-like root: 6 camera
images (samples/CAM_*/), LiDAR sweeps (samples/LIDAR_TOP/*.pcd.bin), Occ3D labels with camera
and LiDAR masks (gts/<scene>/<token>/labels.npz) and the CVPR 2023 challenge infos
(occ_infos_temporal_{train,val}.pkl). The streets are those of create_synthetic_openscene.py,
seen by a nuScenes-like vehicle; the last --val-logs logs are held out, whole.

    python tools/create_synthetic_occ3d.py --out-dir data/synthetic-occ3d
    python tools/create_synthetic_occ3d.py --out-dir /tmp/tiny --num-logs 2 --frames-per-log 4 \
        --image-size 160 90 --val-logs 1
"""
import argparse
import sys

from occnet.datasets.synthetic import generate_occ3d_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out-dir', required=True,
                        help='the nuScenes-like root: receives samples/, gts/ and the infos')
    parser.add_argument('--num-logs', type=int, default=4, help='logs (vehicles/drives)')
    parser.add_argument('--frames-per-log', type=int, default=40, help='2 Hz key frames per log')
    parser.add_argument('--frames-per-scene', type=int, default=40,
                        help='each log is cut into scenes of this many frames (nuScenes: 40)')
    parser.add_argument('--image-size', type=int, nargs=2, default=(320, 180),
                        metavar=('W', 'H'), help='camera image width and height in pixels')
    parser.add_argument('--seed', type=int, default=0, help='same seed -> same dataset')
    parser.add_argument('--val-logs', type=int, default=None,
                        help='the last this many logs form the val infos (default: 1, or 0 '
                             'with a single log)')
    parser.add_argument('--no-lidar', action='store_true',
                        help='skip samples/LIDAR_TOP/*.pcd.bin (mask_lidar is still written)')
    parser.add_argument('--workers', type=int, default=1,
                        help='processes generating logs in parallel (same output for any value)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        summary = generate_occ3d_dataset(
            args.out_dir, num_logs=args.num_logs, frames_per_log=args.frames_per_log,
            image_size=tuple(args.image_size), seed=args.seed,
            frames_per_scene=args.frames_per_scene, with_lidar=not args.no_lidar,
            workers=args.workers, val_logs=args.val_logs)
    except ValueError as err:
        sys.exit(f'create_synthetic_occ3d.py: error: {err}')
    print(f"[synthetic-occ3d] wrote {summary['logs']} logs, {summary['scenes']} scenes, "
          f"{summary['frames']} frames ({summary['train_frames']} train, "
          f"{summary['val_frames']} val) in {summary['seconds']:.1f} s")
    for name, path in summary['paths'].items():
        print(f'  {name:<12} {path}')


if __name__ == '__main__':
    main()
