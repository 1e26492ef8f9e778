"""Image loading at the baseline scale: 8 x 1920x1080 JPEGs to 960x540, decoded in full then
resized (LoadMultiViewImages + ResizeMultiViewImages(scale=0.5), area interpolation) against
decoded straight at half size (LoadMultiViewImages(decode_scale=0.5)), in one run.

    python benchmarks/input_pipeline.py [--frames 10] [--repeats 3]

The JPEGs are camera-like: a shaded background, hard-edged boxes and sensor noise, written at
quality 90, so they cost about as much to decode as photographs of that size (the file sizes
are printed). Both paths run through the real transforms, frame after frame, alternating;
the time is per frame of 8 cameras (median over the repeats). Prints a table and, last, one
JSON line.
"""
import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import cv2
import numpy as np

from occnet.datasets.transforms.image import ResizeMultiViewImages
from occnet.datasets.transforms.loading import LoadMultiViewImages
from occnet.descriptions import OPENSCENE


def camera_like_jpeg(path, rng, size=(1920, 1080)):
    width, height = size
    shade = (np.linspace(50, 190, width)[None, :] + np.linspace(0, 50, height)[:, None])
    image = np.repeat(shade[..., None], 3, axis=2)
    for _ in range(60):
        x, y = rng.integers(0, width - 200), rng.integers(0, height - 120)
        image[y:y + rng.integers(20, 120), x:x + rng.integers(20, 200)] = rng.integers(0, 255, 3)
    image += rng.normal(0, 5, image.shape)
    cv2.imwrite(path, np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])


def frame_calibration():
    intrinsic = np.array([[1545.0, 0, 960], [0, 1545.0, 560], [0, 0, 1]])
    axes = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    return {'sensor2lidar_rotation': np.stack([axes] * len(OPENSCENE.camera_names)),
            'sensor2lidar_translation': np.zeros((len(OPENSCENE.camera_names), 3)),
            'cam_intrinsic': np.stack([intrinsic] * len(OPENSCENE.camera_names))}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as in a dataloader worker
    rng = np.random.default_rng(0)
    paths = {
        'full decode + resize': [LoadMultiViewImages(), ResizeMultiViewImages(scale=0.5)],
        'decode at half size': [LoadMultiViewImages(decode_scale=0.5)],
    }
    with tempfile.TemporaryDirectory() as folder:
        frames = []
        for f in range(args.frames):
            files = [os.path.join(folder, f'{f}_{cam}.jpg') for cam in OPENSCENE.camera_names]
            for file in files:
                camera_like_jpeg(file, rng)
            frames.append(dict(token=f'frame{f}', img_paths=files, **frame_calibration()))
        kb = np.mean([os.path.getsize(p) for fr in frames for p in fr['img_paths']]) / 1024
        times = {name: [] for name in paths}
        shapes = {}
        for _ in range(args.repeats):
            for name, transforms in paths.items():
                start = time.perf_counter()
                for frame in frames:
                    results = dict(frame)
                    for transform in transforms:
                        results = transform.transform(results)
                shapes[name] = results['img_shape']
                times[name].append((time.perf_counter() - start) / len(frames))
    per_frame = {name: statistics.median(t) for name, t in times.items()}
    base = per_frame['full decode + resize']
    print(f'8 cameras per frame, 1920x1080 JPEGs of {kb:.0f} KB on average, {args.frames} '
          f'frames x {args.repeats} repeats, one thread')
    for name, sec in per_frame.items():
        print(f'{name:<22} {sec * 1000:7.1f} ms per frame  -> {shapes[name][1]}x'
              f'{shapes[name][0]}  {base / sec:5.2f}x')
    print(json.dumps(dict(ms_per_frame={k: v * 1000 for k, v in per_frame.items()},
                          speedup=base / per_frame['decode at half size'], jpeg_kb=kb,
                          machine=platform.machine(), cpus=os.cpu_count())))


if __name__ == '__main__':
    main()
