"""`make demo`: synthetic OpenScene data -> infos -> train -> test on held-out logs -> renders.

Every step is a command a user can run by hand; this script prints each one before running
it and skips data generation when the data already exists.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = 'data/openscene-synthetic'
# the model with the best held-out result within the demo's budget (docs/benchmarks.md,
# "Depth against BEVFormer"): the forward-backward (FB-OCC style) demo
CONFIG = 'configs/fbocc/fbocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py'
WORK_DIR = 'work_dirs/demo'
# seconds of training: the budget benchmarks/depth_vs_bevformer.py compares the models at.
# The schedule follows the clock (tools/train.py --time-budget), so the demo fits its
# 15 minutes on a slower CPU too, and ends its cosine decay there
TRAIN_BUDGET_S = 480
GENERATE = ['--num-logs', '8', '--frames-per-log', '32', '--frames-per-scene', '16',
            '--image-size', '320', '180', '--seed', '0', '--workers', '2', '--with-lidar']


def run(step, args):
    print(f'\n== {step}\n$ {" ".join(args)}', flush=True)
    start = time.time()
    subprocess.run([sys.executable] + args, cwd=ROOT, check=True)
    print(f'== {step}: done in {time.time() - start:.0f}s', flush=True)


def main():
    start = time.time()
    marker = os.path.join(ROOT, DATA, 'openscene-v1.0', 'meta_datas', 'meta_data_mini.pkl')
    if not os.path.isfile(marker):
        run('generate synthetic OpenScene data',
            ['tools/create_synthetic_openscene.py', '--out-dir', DATA] + GENERATE)
    run('collect infos (held-out logs for validation)',
        ['tools/collect_data.py', '--data-root', DATA, '--split', 'mini', '--out-dir', DATA,
         '--val-ratio', '0.25', '--seed', '0'])
    run(f'train ({TRAIN_BUDGET_S} s)', ['tools/train.py', CONFIG, '--work-dir', WORK_DIR,
                                        '--time-budget', str(TRAIN_BUDGET_S)])
    with open(os.path.join(ROOT, WORK_DIR, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()  # as written by the training run (cwd = ROOT)
    test_dir = os.path.join(WORK_DIR, 'test')
    run('test on held-out logs', ['tools/test.py', CONFIG, checkpoint, '--out-dir', test_dir,
                                  '--work-dir', WORK_DIR])
    shutil.copyfile(os.path.join(ROOT, test_dir, 'metrics.json'),
                    os.path.join(ROOT, WORK_DIR, 'metrics.json'))
    run('render ground truth beside prediction (top-down, 3D, on the cameras, a scene GIF)',
        ['tools/visualize.py', '--infos', f'{DATA}/openscene_mini_val.pkl', '--data-root', DATA,
         '--pred-dir', f'{test_dir}/predictions', '--out-dir', f'{WORK_DIR}/renders',
         '--num-frames', '4', '--cameras', '--chase', '--scene', 'first'])
    with open(os.path.join(ROOT, WORK_DIR, 'metrics.json')) as f:
        metrics = json.load(f)
    renders = sorted(glob.glob(os.path.join(ROOT, WORK_DIR, 'renders', '*.png')) +
                     glob.glob(os.path.join(ROOT, WORK_DIR, 'renders', '*.gif')))
    print('\n== demo finished in {:.1f} min'.format((time.time() - start) / 60))
    for label, key in (('visible voxels (camera mask)', '_masked'), ('all voxels', '')):
        print(f"{label:<29} mIoU (8 classes) {metrics['miou' + key]:5.1f}   geometric IoU "
              f"{metrics['iou' + key]:5.1f}   foreground mIoU {metrics['fg_miou' + key]:5.1f}")
    print(f"  {'IoU per class':<16} {'visible':>7} {'all':>7}")
    for name, iou in metrics['per_class'].items():
        visible = metrics['per_class_masked'][name]
        print(f'  {name:<16} {"-" if visible is None else f"{visible:7.1f}"} '
              f'{"-" if iou is None else f"{iou:7.1f}"}')
    print(f'metrics: {os.path.join(WORK_DIR, "metrics.json")}')
    print(f'renders: {", ".join(os.path.relpath(p, ROOT) for p in renders)}')
    print(f'checkpoint: {checkpoint}   TensorBoard: tensorboard --logdir {WORK_DIR}')


if __name__ == '__main__':
    main()
