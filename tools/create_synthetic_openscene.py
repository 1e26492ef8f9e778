"""Write a synthetic dataset in the OpenScene layout (split `mini`): streets with buildings,
trees, poles, raised sidewalks and uneven terrain, and objects whose colours do not give their
class away. Labels, camera images and (with --with-lidar) lidar sweeps all come from the same
world, so data tools and models can be exercised without the real release. docs/synthetic_data.md
describes the world.

    python tools/create_synthetic_openscene.py --out-dir data/synthetic --with-lidar
    python tools/create_synthetic_openscene.py --out-dir /tmp/tiny --num-logs 2 --frames-per-log 4 \
        --image-size 160 90
"""
import argparse

from occnet.datasets.synthetic import generate_dataset


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out-dir', required=True,
                        help='receives openscene-v1.1/ and openscene-v1.0/')
    parser.add_argument('--num-logs', type=int, default=4, help='logs (vehicles/drives)')
    parser.add_argument('--frames-per-log', type=int, default=40, help='2 Hz key frames per log')
    parser.add_argument('--frames-per-scene', type=int, default=20,
                        help='each log is cut into scenes of this many frames')
    parser.add_argument('--image-size', type=int, nargs=2, default=(320, 180),
                        metavar=('W', 'H'), help='camera image width and height in pixels')
    parser.add_argument('--seed', type=int, default=0, help='same seed -> same dataset')
    parser.add_argument('--label-digits', type=int, choices=(3, 4), default=3,
                        help='zero-padding of NNN in NNN_occ_final.npy (the release used 3)')
    parser.add_argument('--workers', type=int, default=1,
                        help='processes generating logs in parallel (same output for any value)')
    parser.add_argument('--with-lidar', action='store_true',
                        help='also write MergedPointCloud/<token>.pcd: a 32-beam sweep ray-cast '
                             'against the same world (about 0.6 MB a frame)')
    return parser.parse_args()


def main():
    args = parse_args()
    summary = generate_dataset(
        args.out_dir, num_logs=args.num_logs, frames_per_log=args.frames_per_log,
        image_size=tuple(args.image_size), seed=args.seed,
        frames_per_scene=args.frames_per_scene, label_digits=args.label_digits,
        with_lidar=args.with_lidar, workers=args.workers)
    print(f"[synthetic] wrote {summary['logs']} logs, {summary['scenes']} scenes, "
          f"{summary['frames']} frames in {summary['seconds']:.1f} s")
    for name, path in summary['paths'].items():
        print(f'  {name:<18} {path}')


if __name__ == '__main__':
    main()
