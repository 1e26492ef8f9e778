"""Time of RayIoU on full 200x200x16 frames on CPU (issue 5's budget: under 2 s a frame).

    python benchmarks/ray_iou.py [--repeats 3]

Takes a synthetic OpenScene frame (tools/create_synthetic_openscene.py's generator, one log),
uses its labels as ground truth and the labels shifted by one voxel in x as the prediction,
and casts rays (ray_iou.ray_directions(): 360 azimuths x 15 elevations) from the lidar origins
of the frame and its two neighbours in the scene. Prints the seconds per frame (median of the
repeats) and the metric, then one JSON line.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    from occnet.datasets.collect import collect
    from occnet.datasets.labels import load_occupancy
    from occnet.datasets.synthetic import generate_dataset
    from occnet.evaluation.ray_iou import frame_ray_confusion, ray_directions, summarize_ray_iou
    from occnet.geometry import origins_in_frame
    with tempfile.TemporaryDirectory() as root:
        generate_dataset(root, num_logs=1, frames_per_log=3, image_size=(32, 18), seed=0,
                         frames_per_scene=3, log=None)
        frames, _, _ = collect(root, 'mini', val_ratio=0.0)
        gt = load_occupancy(os.path.join(root, frames[1]['occ_gt_final_path']), 'bench')
    pred = np.roll(gt, 1, axis=0)
    origins = origins_in_frame(frames[1]['lidar2global'],
                               [frames[0]['lidar2global'], frames[2]['lidar2global']])
    directions = ray_directions()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        counts = frame_ray_confusion(gt, pred, origins, directions)
        times.append(time.perf_counter() - start)
    summary = summarize_ray_iou(counts)
    seconds = statistics.median(times)
    print(f'{len(origins)} origins x {len(directions)} rays, ground truth and prediction: '
          f'{seconds:.2f} s per frame (median of {args.repeats}); RayIoU '
          f"{summary['ray_iou']:.1f} for the 1-voxel shift", file=sys.stderr)
    print(json.dumps(dict(sec_per_frame=round(seconds, 3), times=[round(t, 3) for t in times],
                          rays=len(origins) * len(directions), ray_iou=summary['ray_iou'],
                          cpu=platform.processor() or platform.machine(),
                          cpus=os.cpu_count())))


if __name__ == '__main__':
    main()
