"""The Occ3D-nuScenes protocol worked by hand (camera mask, an absent class, the mean over
classes present), and tools/eval_occ.py --dataset occ3d end to end with RayIoU."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from occnet.datasets.occ3d import load_occ3d_infos
from occnet.descriptions import OCC3D_NUSCENES as OCC3D
from occnet.evaluation.occ3d_eval import evaluate_occ3d
from occnet.evaluation.report import save_prediction
from test_occ3d import challenge_frame

CAR, TRUCK, PEDESTRIAN, DRIVEABLE, VEGETATION, FREE = 4, 10, 7, 11, 16, 17
V1, V2, V3, V4 = (110, 100, 3), (111, 100, 3), (90, 100, 5), (100, 110, 4)


def scene(tmp_path, num_frames=2):
    """Frames of one scene, 2 m apart along ego x, each with the same label: road (11) on
    the lowest layer, cars at V1 and V2, vegetation at V3 which no camera sees, free at V4."""
    gt = np.full(OCC3D.grid_shape, FREE, dtype=np.uint8)
    gt[:, :, 0] = DRIVEABLE
    gt[V1], gt[V2], gt[V3] = CAR, CAR, VEGETATION
    mask_camera = np.ones(OCC3D.grid_shape, dtype=np.uint8)
    mask_camera[V3] = 0
    frames = []
    for i in range(num_frames):
        frame = challenge_frame(f'tok{i}')
        frame['timestamp'] += i * 500_000
        frame['ego2global_translation'] = [100.0 + 2 * i, 200.0, 0.0]
        label = tmp_path / frame['occ_gt_path']
        label.parent.mkdir(parents=True)
        np.savez_compressed(label, semantics=gt, mask_lidar=mask_camera,
                            mask_camera=mask_camera)
        frames.append(frame)
    infos = tmp_path / 'occ_infos_temporal_val.pkl'
    with open(infos, 'wb') as f:
        pickle.dump(dict(infos=frames, metadata=dict(version='v1.0-trainval')), f)
    return str(infos), gt


def test_occ3d_miou_by_hand(tmp_path):
    """Prediction: V2 truck instead of car, V3 free (hidden), V4 pedestrian where it is free.
    Visible voxels: car 1 TP + 1 FN = 50; truck 1 FP = 0; pedestrian 1 FP = 0; road all
    right = 100; vegetation is not seen by any camera, so absent (0 / 0) and left out, as
    the other 12 classes with no voxel are. mIoU = (50 + 0 + 0 + 100) / 4 = 37.5. Without
    the mask vegetation counts (1 FN): (50 + 0 + 0 + 100 + 0) / 5 = 30."""
    infos, gt = scene(tmp_path, num_frames=1)
    pred = gt.copy()
    pred[V2], pred[V3], pred[V4] = TRUCK, FREE, PEDESTRIAN
    save_prediction(str(tmp_path / 'preds'), 'tok0', pred)
    frames = load_occ3d_infos(infos, OCC3D.camera_names)
    summary = evaluate_occ3d(frames, str(tmp_path), str(tmp_path / 'preds'))
    assert summary['miou'] == pytest.approx(37.5)
    assert summary['miou_all_voxels'] == pytest.approx(30.0)
    per_class = summary['per_class']
    assert per_class['car'] == pytest.approx(50.0) and per_class['truck'] == 0.0
    assert per_class['driveable_surface'] == pytest.approx(100.0)
    assert per_class['vegetation'] is None and per_class['bus'] is None
    assert 'miou_16' not in summary and summary['num_frames'] == 1


def test_eval_occ_tool_on_occ3d_with_ray_iou(tmp_path):
    """Perfect predictions score 100 on both protocols; one wrong car moves the mIoU to
    50 for car and the RayIoU below 100. A missing prediction stops the tool naming it."""
    infos, gt = scene(tmp_path)
    for token in ('tok0', 'tok1'):
        save_prediction(str(tmp_path / 'preds'), token, gt)
    out = tmp_path / 'metrics.json'
    command = [sys.executable, 'tools/eval_occ.py', '--dataset', 'occ3d', '--infos', infos,
               '--data-root', str(tmp_path), '--pred-dir', str(tmp_path / 'preds'),
               '--out-json', str(out), '--ray-iou']
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(out.read_text())
    assert metrics['miou'] == pytest.approx(100.0)
    for key in ('ray_iou', 'ray_iou@1m', 'ray_iou@2m', 'ray_iou@4m'):
        assert metrics[key] == pytest.approx(100.0)
    # no mask for rays: the vegetation no camera sees is hit too
    assert set(metrics['ray_iou_per_class']) == {'car', 'driveable_surface', 'vegetation'}
    wrong = gt.copy()
    wrong[V1] = TRUCK
    save_prediction(str(tmp_path / 'preds'), 'tok0', wrong)
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(out.read_text())
    assert metrics['per_class']['car'] == pytest.approx(100 * 3 / 4)  # 3 TP, 1 FN
    assert metrics['ray_iou'] < 100.0
    os.remove(tmp_path / 'preds' / 'tok1.npz')
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and 'tok1.npz' in done.stderr
