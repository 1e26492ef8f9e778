"""tools/browse_dataset.py: the augmented sample, drawn, for chosen dataset indices."""
import os
import runpy
import sys

import cv2
import numpy as np

from conftest import REPO_ROOT
from occnet.visualization.pipeline_view import sample_lines

CONFIG = os.path.join(REPO_ROOT, 'configs', 'bevformer_occ',
                      'bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py')


def test_sample_lines_name_the_queue_and_the_augmentation():
    can_bus = np.zeros((2, 18))
    can_bus[-1, :2], can_bus[-1, 17] = (4.0, -0.5), 2.5
    lines = sample_lines(dict(token='abc', log_name='log', frame_idx=7, queue_valid=[False, True],
                              scene_start=False, prev_token='xyz', bev_flip=(True, False),
                              img_shape=(144, 256), img_scale_factor=0.8, can_bus=can_bus))
    assert 'token abc' in lines[0] and 'frame 7' in lines[0]
    assert '[0, 1]' in lines[1] and 'prev_token xyz' in lines[1]
    assert 'BEV flip (x, y) (True, False)' in lines[2] and 'scale factor 0.8' in lines[2]
    assert 'dx 4.00 m' in lines[3] and 'dyaw 2.50 deg' in lines[3]


def test_browse_writes_one_picture_per_index(tiny_data_root, tmp_path, monkeypatch):
    script = os.path.join(REPO_ROOT, 'tools', 'browse_dataset.py')
    root = f'{tiny_data_root}/'
    monkeypatch.setattr(sys, 'argv', [
        script, CONFIG, '--indices', '0', '2', '--out-dir', str(tmp_path), '--camera-width',
        '160', '--cfg-options', f'train_dataloader.dataset.data_root={root}',
        f'train_dataloader.dataset.ann_file={root}openscene_mini_train.pkl'])
    runpy.run_path(script, run_name='__main__')
    written = sorted(os.listdir(tmp_path))
    assert len(written) == 2 and written[0].startswith('train_0_')
    image = cv2.imread(str(tmp_path / written[1]))
    # 4 camera tiles of 160 x 90 pixels per row (16:9 images)
    assert image.shape[1] == 4 * 160
    assert image.shape[0] > 2 * 90 + 200  # text, 2 camera rows, queue strip, top-down map
