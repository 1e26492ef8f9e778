"""Occupancy metrics: hand-computed IoUs, the mmengine metric (1 and 2 processes) and
tools/eval_occ.py end to end."""
import json
import os
import pickle
import runpy
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from occnet.descriptions import OPENSCENE
from occnet.evaluation import (OccupancyMetric, confusion_matrix, summarize_confusion,
                               summarize_split)
from occnet.evaluation.occupancy_metrics import frame_confusions, near_voxels
from occnet.evaluation.report import format_markdown
from occnet.geometry import xyz_to_index1d
from occnet.registry import METRICS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VEHICLE, PEDESTRIAN, GENERIC, BARRIER, BACKGROUND = 0, 7, 6, 9, 10
CLASS_NAMES, GRID_SHAPE = OPENSCENE.class_names, OPENSCENE.grid_shape
FREE_INDEX, IGNORE_INDEX, NUM_CLASSES = (OPENSCENE.free_index, OPENSCENE.ignore_index,
                                         OPENSCENE.num_classes)


def tiny_frame():
    """4x4x2 grids (32 voxels). Counted by hand (ignored voxel (3,3,1) left out, 31 voxels):
        (0,0,0) gt vehicle     pred vehicle     -> vehicle TP
        (0,1,0) gt vehicle     pred background  -> vehicle FN, background FP
        (1,0,0) gt background  pred background  -> background TP
        (2,2,0) gt free        pred pedestrian  -> pedestrian FP, geometric FP
        (3,3,1) gt ignore(255) pred bicycle     -> skipped
    """
    gt = np.full((4, 4, 2), FREE_INDEX, dtype=np.uint8)
    pred = gt.copy()
    gt[0, 0, 0], pred[0, 0, 0] = VEHICLE, VEHICLE
    gt[0, 1, 0], pred[0, 1, 0] = VEHICLE, BACKGROUND
    gt[1, 0, 0], pred[1, 0, 0] = BACKGROUND, BACKGROUND
    pred[2, 2, 0] = PEDESTRIAN
    gt[3, 3, 1], pred[3, 3, 1] = IGNORE_INDEX, 5
    return gt, pred


def test_confusion_matrix_counts_by_hand():
    gt, pred = tiny_frame()
    cm = confusion_matrix(gt, pred)
    assert cm.shape == (NUM_CLASSES, NUM_CLASSES) and cm.dtype == np.int64
    expected = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    expected[VEHICLE, VEHICLE] = 1
    expected[VEHICLE, BACKGROUND] = 1
    expected[BACKGROUND, BACKGROUND] = 1
    expected[FREE_INDEX, PEDESTRIAN] = 1
    expected[FREE_INDEX, FREE_INDEX] = 31 - 4  # the other counted voxels are free in both
    np.testing.assert_array_equal(cm, expected)


def test_summary_by_hand():
    summary = summarize_confusion(confusion_matrix(*tiny_frame()))
    # vehicle: TP 1, FP 0, FN 1 -> 1/2; background: TP 1, FP 1, FN 0 -> 1/2;
    # pedestrian: predicted but absent from gt -> TP 0, FP 1 -> 0 (counted in the mean).
    assert summary['per_class']['vehicle'] == pytest.approx(50.0)
    assert summary['per_class']['background'] == pytest.approx(50.0)
    assert summary['per_class']['pedestrian'] == 0.0
    # bicycle only at the ignored voxel, the rest never appear: left out of the mean.
    for name in ('czone_sign', 'bicycle', 'generic_object', 'traffic_cone', 'barrier'):
        assert summary['per_class'][name] is None
    assert set(summary['per_class']) == {CLASS_NAMES[c] for c in (0, 4, 5, 6, 7, 8, 9, 10)}
    assert summary['miou'] == pytest.approx((50 + 50 + 0) / 3)
    assert summary['miou_16'] == pytest.approx((50 + 50 + 0) / 16)  # absent slots count 0
    assert summary['fg_miou'] == pytest.approx((50 + 0) / 2)  # vehicle, pedestrian
    # occupancy: gt occupied {000, 010, 100}, pred occupied {000, 010, 100, 220}
    # -> TP 3, FP 1, FN 0
    assert summary['iou'] == pytest.approx(75.0)
    assert summary['precision'] == pytest.approx(75.0)
    assert summary['recall'] == pytest.approx(100.0)
    assert summary['num_voxels'] == 31


def test_mask_leaves_out_invisible_voxels():
    gt, pred = tiny_frame()
    visible = np.ones(gt.shape, dtype=bool)
    visible[0, 1, 0] = visible[2, 2, 0] = False  # hide the vehicle FN and the pedestrian FP
    summary = summarize_confusion(confusion_matrix(gt, pred, mask=visible))
    # vehicle TP 1; background TP 1; pedestrian gone -> None
    assert summary['per_class']['vehicle'] == pytest.approx(100.0)
    assert summary['per_class']['background'] == pytest.approx(100.0)
    assert summary['per_class']['pedestrian'] is None
    assert summary['miou'] == pytest.approx(100.0)
    assert summary['miou_16'] == pytest.approx(200.0 / 16)
    assert summary['iou'] == pytest.approx(100.0)
    assert summary['num_voxels'] == 32 - 1 - 2


def test_all_free_frame():
    gt = np.full((4, 4, 2), FREE_INDEX, dtype=np.uint8)
    summary = summarize_confusion(confusion_matrix(gt, gt))
    assert all(v is None for v in summary['per_class'].values())
    assert summary['miou'] is None and summary['fg_miou'] is None
    assert summary['miou_16'] == 0.0
    assert summary['iou'] is None and summary['precision'] is None and summary['recall'] is None
    assert summary['num_voxels'] == 32

    pred = gt.copy()
    pred[1, 1, 1] = VEHICLE  # a false alarm on an empty frame: IoU 0, not undefined
    summary = summarize_confusion(confusion_matrix(gt, pred))
    assert summary['per_class']['vehicle'] == 0.0 and summary['miou'] == 0.0
    assert summary['iou'] == 0.0 and summary['precision'] == 0.0 and summary['recall'] is None


def test_full_grid_is_fast_and_counts_sparse_voxels():
    gt = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
    gt[100, 100, 4] = gt[10, 190, 0] = BARRIER
    pred = gt.copy()
    pred[10, 190, 0] = FREE_INDEX
    confusion_matrix(gt, pred)
    start = time.perf_counter()
    cm = confusion_matrix(gt, pred)
    assert time.perf_counter() - start < 0.1
    assert cm[BARRIER, BARRIER] == 1 and cm[BARRIER, FREE_INDEX] == 1
    assert cm.sum() == np.prod(GRID_SHAPE)
    assert summarize_confusion(cm)['per_class']['barrier'] == pytest.approx(50.0)


def test_confusion_matrix_errors_name_the_problem():
    gt, pred = tiny_frame()
    with pytest.raises(ValueError, match=r'\(4, 4, 2\).*\(4, 4, 3\)'):
        confusion_matrix(gt, np.zeros((4, 4, 3), dtype=np.uint8))
    bad = pred.copy()
    bad[0, 0, 0] = 12
    with pytest.raises(ValueError, match='class 12'):
        confusion_matrix(gt, bad)
    bad[0, 0, 0] = IGNORE_INDEX
    with pytest.raises(ValueError, match='class 255'):
        confusion_matrix(gt, bad)
    with pytest.raises(ValueError, match='shape'):
        summarize_confusion(np.zeros((11, 11)))


def random_frames(num_frames, seed=0, shape=(4, 4, 2)):
    """Deterministic random frames: (token, gt, pred, visible) with every class present."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(num_frames):
        gt = rng.integers(0, NUM_CLASSES, shape).astype(np.uint8)
        gt[0, 0, 0] = IGNORE_INDEX
        pred = rng.integers(0, NUM_CLASSES, shape).astype(np.uint8)
        frames.append((f'token{i:02d}', gt, pred, rng.random(shape) > 0.3))
    return frames


def run_metric(metric, frames, batch_size=2):
    """Feed frames to a metric as the runner would: tensors, batches of dicts."""
    for start in range(0, len(frames), batch_size):
        batch = frames[start:start + batch_size]
        data_batch = {'data_samples': [
            {'voxel_semantics': torch.from_numpy(gt), 'mask_camera': torch.from_numpy(vis)}
            for _, gt, _, vis in batch]}
        outputs = [{'token': token, 'occ_pred': torch.from_numpy(pred).long()}
                   for token, _, pred, _ in batch]
        metric.process(data_batch, outputs)


def expected_summary(frames):
    """The summary of the summed (all, near, far) matrices of the frames, with OpenScene's
    protocol mIoU (all voxels)."""
    cm = sum(frame_confusions(gt, pred) for _, gt, pred, _ in frames)
    cm_masked = sum(frame_confusions(gt, pred, mask=vis) for _, gt, pred, vis in frames)
    assert (cm[0] == sum(confusion_matrix(gt, pred) for _, gt, pred, _ in frames)).all()
    assert (cm[1] + cm[2] == cm[0]).all()  # near and far split the voxels
    summary = summarize_split(cm, cm_masked, len(frames), len(frames))
    return {**summary, 'protocol_miou': summary['miou']}


def test_metric_equals_summary_of_summed_matrices(tmp_path):
    frames = random_frames(4)
    out_json = tmp_path / 'metrics.json'
    metric = METRICS.build(dict(type='OccupancyMetric', out_json=str(out_json)))
    run_metric(metric, frames)
    metrics = metric.evaluate(size=4)
    expected = expected_summary(frames)
    assert metric.last_summary == expected
    assert metrics['occ/miou'] == pytest.approx(expected['miou'])
    assert metrics['occ/miou_16'] == pytest.approx(expected['miou_16'])
    assert metrics['occ/iou'] == pytest.approx(expected['iou'])
    assert metrics['occ/miou_masked'] == pytest.approx(expected['miou_masked'])
    assert metrics['occ/vehicle_iou'] == pytest.approx(expected['per_class']['vehicle'])
    assert json.loads(out_json.read_text()) == expected
    assert metric.results == []  # cleared for the next evaluation


def test_metric_counts_repeated_token_once():
    frames = random_frames(3)
    metric = OccupancyMetric(print_table=False)
    run_metric(metric, frames + frames[:1])  # padded sampler repeats the first frame
    metric.evaluate(size=3)
    assert metric.last_summary == expected_summary(frames)
    assert metric.last_summary['num_frames'] == 3


def test_metric_writes_prediction_files(tmp_path):
    gt = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
    pred = gt.copy()
    pred[5, 6, 7] = PEDESTRIAN
    flow = np.zeros((*GRID_SHAPE, 2), dtype=np.float64)
    flow[5, 6, 7] = (1.5, -0.5)
    metric = OccupancyMetric(out_dir=str(tmp_path / 'preds'), print_table=False)
    metric.process({'data_samples': [{'voxel_semantics': torch.from_numpy(gt)}]},
                   [{'token': 'abc123', 'occ_pred': torch.from_numpy(pred).long(),
                     'flow_pred': torch.from_numpy(flow)}])
    with np.load(tmp_path / 'preds' / 'abc123.npz') as saved:
        assert saved['semantics'].dtype == np.uint8 and saved['semantics'].shape == GRID_SHAPE
        np.testing.assert_array_equal(saved['semantics'], pred)
        assert saved['flow'].dtype == np.float32 and saved['flow'].shape == (*GRID_SHAPE, 2)
        np.testing.assert_allclose(saved['flow'][5, 6, 7], (1.5, -0.5))
    metrics = metric.evaluate(size=1)
    assert metrics['occ/iou'] == 0.0  # one false occupied voxel
    assert 'occ/miou_masked' not in metrics  # no mask_camera given


class _FiveFrames(list):
    """5 dataset indices in two scenes (2 and 3 frames), as the samplers see a dataset."""
    scene_ids = [0, 0, 1, 1, 1]

    def __init__(self):
        super().__init__(range(5))


def _dist_worker(rank, world_size, init_file, out_dir):
    from mmengine.dataset import DefaultSampler

    from occnet.datasets.samplers import SceneContiguousSampler
    torch_dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                                  world_size=world_size)
    frames = random_frames(5)
    results = {}
    # DefaultSampler pads 5 frames to 6: rank 0 gets 0, 2, 4 and rank 1 gets 1, 3 and 0 again;
    # SceneContiguousSampler gives whole scenes, 2 frames and 3 frames, without padding
    for name, sampler in (('default', DefaultSampler(_FiveFrames(), shuffle=False)),
                          ('scenes', SceneContiguousSampler(_FiveFrames()))):
        indices = list(sampler)
        metric = OccupancyMetric(print_table=False)
        run_metric(metric, [frames[i] for i in indices])
        results[name] = (indices, metric.evaluate(size=5), metric.last_summary)
    with open(os.path.join(out_dir, f'rank{rank}.pkl'), 'wb') as f:
        pickle.dump(results, f)
    torch_dist.destroy_process_group()


def test_two_processes_match_one_process_on_an_uneven_split(tmp_path):
    mp.spawn(_dist_worker, args=(2, str(tmp_path / 'store'), str(tmp_path)), nprocs=2,
             join=True)
    metric = OccupancyMetric(print_table=False)
    run_metric(metric, random_frames(5))
    single = metric.evaluate(size=5)
    ranks = []
    for rank in range(2):
        with open(tmp_path / f'rank{rank}.pkl', 'rb') as f:
            ranks.append(pickle.load(f))
    assert [r['default'][0] for r in ranks] == [[0, 2, 4], [1, 3, 0]]  # frame 0 twice
    assert [r['scenes'][0] for r in ranks] == [[0, 1], [2, 3, 4]]
    for result in ranks:
        for name in ('default', 'scenes'):
            _, metrics, summary = result[name]
            np.testing.assert_equal(metrics, single)
            assert summary == metric.last_summary and summary['num_frames'] == 5


def write_eval_folder(root):
    """Two frames of labels and predictions on the full grid; see the test for the counts.

    Frame aaaa: (10,20,5) vehicle->vehicle, (10,21,5) vehicle->free, (50,50,2)
    background->background, (60,60,3) free->vehicle; invisible: (10,21,5), (60,60,3).
    Frame bbbb: (100,100,8) pedestrian->pedestrian, (0,0,0) barrier->background,
    (199,199,15) free->generic_object; invisible: (199,199,15).
    """
    frames = {
        'aaaa': ([((10, 20, 5), VEHICLE), ((10, 21, 5), VEHICLE), ((50, 50, 2), BACKGROUND)],
                 [((10, 20, 5), VEHICLE), ((50, 50, 2), BACKGROUND), ((60, 60, 3), VEHICLE)],
                 [(10, 21, 5), (60, 60, 3)]),
        'bbbb': ([((100, 100, 8), PEDESTRIAN), ((0, 0, 0), BARRIER)],
                 [((100, 100, 8), PEDESTRIAN), ((0, 0, 0), BACKGROUND),
                  ((199, 199, 15), GENERIC)],
                 [(199, 199, 15)]),
    }
    os.makedirs(root / 'labels')
    os.makedirs(root / 'preds')
    infos = []
    for i, (token, (gt_voxels, pred_voxels, invisible)) in enumerate(frames.items()):
        xyz = np.array([v for v, _ in gt_voxels])
        sparse = np.stack([xyz_to_index1d(xyz), [c for _, c in gt_voxels]], axis=1)
        np.save(root / 'labels' / f'{token}_occ_final.npy', sparse)
        np.save(root / 'labels' / f'{token}_occ_invalid.npy', xyz_to_index1d(np.array(invisible)))
        pred = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
        for (x, y, z), c in pred_voxels:
            pred[x, y, z] = c
        np.savez(root / 'preds' / f'{token}.npz', semantics=pred)
        label_path = f'labels/{token}_occ_final.npy'
        infos.append({'token': token, 'frame_idx': i,
                      # one relative (to the infos folder), one absolute path
                      'occ_gt_final_path': label_path if i == 0 else str(root / label_path),
                      'occ_invalid_path': f'labels/{token}_occ_invalid.npy'})
    infos.append({'token': 'unlabelled', 'frame_idx': 2})
    with open(root / 'infos.pkl', 'wb') as f:
        pickle.dump(infos, f)


def run_eval_occ(root, *extra):
    cmd = [sys.executable, os.path.join(REPO_ROOT, 'tools', 'eval_occ.py'),
           '--infos', str(root / 'infos.pkl'), '--pred-dir', str(root / 'preds'),
           '--out-json', str(root / 'out' / 'metrics.json'), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


def test_eval_occ_script_by_hand(tmp_path):
    write_eval_folder(tmp_path)
    proc = run_eval_occ(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'vehicle' in proc.stdout and 'mIoU-16' in proc.stdout
    result = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    per_class = result['per_class']
    # vehicle TP 1 (aaaa), FN 1 (10,21,5), FP 1 (60,60,3) -> 1/3
    assert per_class['vehicle'] == pytest.approx(100 / 3)
    assert per_class['background'] == pytest.approx(50.0)  # TP 1, FP 1 (bbbb barrier voxel)
    assert per_class['pedestrian'] == pytest.approx(100.0)
    assert per_class['barrier'] == 0.0  # FN 1
    assert per_class['generic_object'] == 0.0  # FP 1
    assert per_class['bicycle'] is None and per_class['traffic_cone'] is None
    assert result['miou'] == pytest.approx((100 / 3 + 50 + 100) / 5)
    assert result['miou_16'] == pytest.approx((100 / 3 + 50 + 100) / 16)
    # occupied: TP 4, FP 2 ((60,60,3), (199,199,15)), FN 1 ((10,21,5))
    assert result['iou'] == pytest.approx(400 / 7)
    assert result['precision'] == pytest.approx(400 / 6)
    assert result['recall'] == pytest.approx(80.0)
    # visible only: vehicle TP 1; background TP 1, FP 1; pedestrian TP 1; barrier FN 1;
    # generic_object's only voxel is invisible -> None
    assert result['per_class_masked']['vehicle'] == pytest.approx(100.0)
    assert result['per_class_masked']['generic_object'] is None
    assert result['miou_masked'] == pytest.approx((100 + 50 + 100 + 0) / 4)
    assert result['iou_masked'] == pytest.approx(100.0)
    assert result['num_frames'] == 2 and result['num_frames_masked'] == 2


def run_eval_occ_in_process(root, monkeypatch, *extra):
    """tools/eval_occ.py in this interpreter (no torch start-up cost); returns the
    SystemExit code, i.e. the exit status the script would give (a str message means 1)."""
    script = os.path.join(REPO_ROOT, 'tools', 'eval_occ.py')
    monkeypatch.setattr(sys, 'argv', [
        script, '--infos', str(root / 'infos.pkl'), '--pred-dir', str(root / 'preds'),
        '--out-json', str(root / 'out' / 'metrics.json'), *extra])
    try:
        runpy.run_path(script, run_name='__main__')
    except SystemExit as stop:
        return stop.code
    return 0


def test_eval_occ_missing_prediction(tmp_path, monkeypatch):
    write_eval_folder(tmp_path)
    os.remove(tmp_path / 'preds' / 'bbbb.npz')
    code = run_eval_occ_in_process(tmp_path, monkeypatch)
    assert code not in (0, None)
    assert 'bbbb' in str(code) and 'bbbb.npz' in str(code)

    assert run_eval_occ_in_process(tmp_path, monkeypatch, '--skip-missing') == 0
    result = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert result['num_frames'] == 1 and result['num_frames_skipped'] == 1
    assert result['per_class']['vehicle'] == pytest.approx(100 / 3)  # frame aaaa alone


def test_eval_occ_ray_iou(tmp_path, monkeypatch):
    from occnet.evaluation.ray_iou import frame_ray_confusion, summarize_ray_iou
    from occnet.geometry import sparse_to_dense
    write_eval_folder(tmp_path)
    assert run_eval_occ_in_process(tmp_path, monkeypatch, '--ray-iou') == 0
    result = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    # the hand-made infos carry no poses: rays leave each frame's own lidar origin, which in
    # frame bbbb lies inside the pedestrian voxel (100, 100, 8) -> every ray hits it at 0 m
    counts = 0
    for token in ('aaaa', 'bbbb'):
        gt = sparse_to_dense(np.load(tmp_path / 'labels' / f'{token}_occ_final.npy'))
        pred = np.load(tmp_path / 'preds' / f'{token}.npz')['semantics']
        counts = counts + frame_ray_confusion(gt, pred, np.zeros((1, 3)))
    expected = summarize_ray_iou(counts)
    assert result['ray_iou'] == pytest.approx(expected['ray_iou'])
    assert result['ray_iou_per_class']['pedestrian'] == pytest.approx(100.0)
    assert {'ray_iou@1m', 'ray_iou@2m', 'ray_iou@4m'} <= set(result)
    markdown = (tmp_path / 'out' / 'metrics.md').read_text()
    assert '| vehicle | 33.33 | 100.00 |' in markdown and 'RayIoU: ray_iou@1m' in markdown


def test_near_and_far_split_at_25_m_by_hand():
    near = near_voxels()
    # voxel centres: x = (i - 100 + 0.5) * 0.5 m
    assert near[140, 100, 0] and not near[160, 100, 0]  # 20.25 m / 30.25 m ahead
    assert near[145, 120, 0] and not near[146, 121, 0]  # 24.95 m / 25.55 m off the lidar
    gt = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
    pred = gt.copy()
    gt[140, 100, 5] = gt[160, 100, 5] = gt[161, 100, 5] = VEHICLE
    pred[140, 100, 5] = pred[160, 100, 5] = VEHICLE  # near: 1 TP; far: 1 TP, 1 FN
    pred[40, 100, 5] = PEDESTRIAN  # x = -29.75 m: a far false positive
    summary = summarize_split(frame_confusions(gt, pred), num_frames=1)
    assert summary['per_class']['vehicle'] == pytest.approx(200 / 3)
    assert summary['near']['per_class']['vehicle'] == pytest.approx(100.0)
    assert summary['far']['per_class']['vehicle'] == pytest.approx(50.0)
    assert summary['far']['per_class']['pedestrian'] == 0.0
    assert summary['near']['per_class']['pedestrian'] is None
    assert summary['iou_near'] == pytest.approx(100.0)
    assert summary['iou_far'] == pytest.approx(100 / 3)  # occupied: TP 1, FN 1, FP 1


def flow_frame():
    """A vehicle moving at 5 m/s predicted still (EPE 5), a pedestrian at 0.1 m/s predicted
    at (0.1, 0.3) (EPE 0.3), and two voxels foreground on one side only (not counted)."""
    gt = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
    pred = gt.copy()
    gt_flow = np.zeros((*GRID_SHAPE, 2))
    pred_flow = np.zeros_like(gt_flow)
    gt[10, 10, 5] = pred[10, 10, 5] = VEHICLE
    gt_flow[10, 10, 5] = [3.0, 4.0]
    gt[20, 20, 5] = pred[20, 20, 5] = PEDESTRIAN
    gt_flow[20, 20, 5], pred_flow[20, 20, 5] = [0.1, 0.0], [0.1, 0.3]
    gt[30, 30, 5] = VEHICLE  # missed: no flow error counted
    gt_flow[30, 30, 5] = [9.0, 9.0]
    pred[40, 40, 5] = VEHICLE  # hallucinated
    pred_flow[40, 40, 5] = [9.0, 9.0]
    return gt, pred, gt_flow, pred_flow


def test_flow_endpoint_error_by_hand():
    from occnet.evaluation.occupancy_metrics import flow_error_sums, summarize_flow
    sums = flow_error_sums(*flow_frame())
    np.testing.assert_allclose(sums, [0.3, 1, 5.0, 1])
    flow = summarize_flow(sums)
    assert flow['flow_epe'] == pytest.approx(2.65)
    assert flow['flow_epe_stationary'] == pytest.approx(0.3)
    assert flow['flow_epe_moving'] == pytest.approx(5.0) and flow['flow_voxels'] == 2
    assert summarize_flow(np.zeros(4))['flow_epe'] is None


def test_metric_reports_flow_error_once_per_token():
    gt, pred, gt_flow, pred_flow = flow_frame()
    metric = OccupancyMetric(print_table=False)
    for _ in range(2):  # a padded sampler repeats the frame
        metric.process({'data_samples': [{'voxel_semantics': torch.from_numpy(gt),
                                          'voxel_flow': torch.from_numpy(gt_flow)}]},
                       [{'token': 'f', 'occ_pred': torch.from_numpy(pred),
                         'flow_pred': torch.from_numpy(pred_flow)}])
    metrics = metric.evaluate(size=1)
    assert metrics['occ/flow_epe'] == pytest.approx(2.65)
    assert metrics['occ/flow_epe_moving'] == pytest.approx(5.0)
    assert metric.last_summary['flow_voxels'] == 2


def test_eval_occ_flow_error(tmp_path, monkeypatch):
    write_eval_folder(tmp_path)
    # frame aaaa: flow rows aligned with its occupancy rows (vehicle, vehicle, background)
    np.save(tmp_path / 'labels' / 'aaaa_flow_final.npy',
            np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]], dtype=np.float32))
    with open(tmp_path / 'infos.pkl', 'rb') as f:
        infos = pickle.load(f)
    infos[0]['flow_gt_final_path'] = 'labels/aaaa_flow_final.npy'
    with open(tmp_path / 'infos.pkl', 'wb') as f:
        pickle.dump(infos, f)
    with np.load(tmp_path / 'preds' / 'aaaa.npz') as data:
        semantics = data['semantics']
    np.savez(tmp_path / 'preds' / 'aaaa.npz', semantics=semantics,
             flow=np.zeros((*GRID_SHAPE, 2), dtype=np.float32))
    assert run_eval_occ_in_process(tmp_path, monkeypatch) == 0
    result = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    # only (10, 20, 5) is a vehicle in both: EPE |(0, 0) - (3, 4)| = 5, moving
    assert result['flow_epe'] == pytest.approx(5.0) and result['flow_voxels'] == 1
    assert result['flow_epe_moving'] == pytest.approx(5.0)
    assert result['flow_epe_stationary'] is None
    assert 'Flow EPE (m/s, 1 voxels foreground in both): all 5.000, moving 5.000' in (
        tmp_path / 'out' / 'metrics.md').read_text()


def test_metric_ray_iou_sums_the_frames_counts_once_each():
    from occnet.evaluation.ray_iou import frame_ray_confusion, ray_iou_summary
    frames = []
    for i in range(2):
        gt = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
        gt[:, :, 3] = 10  # ground
        gt[120 + 10 * i:125 + 10 * i, 95:105, 4:7] = VEHICLE
        pred = np.roll(gt, i + 1, axis=0)
        origins = np.array([[0.0, 0.0, 0.0], [-5.0, 0.0, 0.0]], dtype=np.float32)
        frames.append((f'ray{i}', gt, pred, origins))
    metric = OccupancyMetric(print_table=False, ray_iou=True)
    for batch in (frames, frames[:1]):  # the repeat of frame 0 must not count
        metric.process({'data_samples': [{'voxel_semantics': torch.from_numpy(gt),
                                          'ray_origins': origins} for _, gt, _, origins in batch]},
                       [{'token': token, 'occ_pred': torch.from_numpy(pred)}
                        for token, _, pred, _ in batch])
    metrics = metric.evaluate(size=2)
    expected = ray_iou_summary(sum(frame_ray_confusion(gt, pred, origins)
                                   for _, gt, pred, origins in frames))
    assert metrics['occ/ray_iou'] == expected['ray_iou']
    assert metrics['occ/ray_iou@1m'] == expected['ray_iou@1m']
    assert metric.last_summary['ray_iou_per_class'] == expected['ray_iou_per_class']
    # a 1-voxel shift moves every depth by <= 0.5 m / cos: all thresholds but none perfect
    assert 0 < expected['ray_iou@1m'] <= expected['ray_iou@4m'] < 100
    with pytest.raises(KeyError, match='ray_origins'):
        metric.process({'data_samples': [{'voxel_semantics': torch.from_numpy(gt)}]},
                       [{'token': 'x', 'occ_pred': torch.from_numpy(gt)}])


def test_metric_depth_abs_rel_and_delta_by_hand():
    """Two cameras of 1x2 cells; LiDAR in 3 of them, a repeated frame counted once.
    |10-8|/8 = 0.25 (ratio 1.25, not < 1.25), |20-20|/20 = 0 (in), |9-10|/10 = 0.1 (in):
    AbsRel = 0.35 / 3, delta < 1.25 = 2 / 3."""
    gt = np.full((4, 4, 2), FREE_INDEX, dtype=np.uint8)
    depth_gt = torch.tensor([[[8.0, 0.0]], [[20.0, 10.0]]])  # (N, H, W), 0 = no return
    depth_pred = torch.tensor([[[10.0, 3.0]], [[20.0, 9.0]]])
    metric = OccupancyMetric(print_table=False)
    for _ in range(2):
        metric.process({'data_samples': [{'voxel_semantics': torch.from_numpy(gt),
                                          'depth_maps': depth_gt}]},
                       [{'token': 'd', 'occ_pred': torch.from_numpy(gt),
                         'depth_pred': depth_pred}])
    metrics = metric.evaluate(size=1)
    assert metrics['occ/depth_abs_rel'] == pytest.approx(0.35 / 3)
    assert metrics['occ/depth_delta1'] == pytest.approx(200 / 3)
    assert metric.last_summary['depth_cells'] == 3
    assert 'Depth against LiDAR (3 cells): AbsRel 0.117, delta < 1.25 66.7%' in \
        format_markdown(metric.last_summary)
    with pytest.raises(ValueError, match="frame token e: depth_pred .* DepthMapsFromPoints"):
        metric.process({'data_samples': [{'voxel_semantics': torch.from_numpy(gt),
                                          'depth_maps': depth_gt[:, :, :1]}]},
                       [{'token': 'e', 'occ_pred': torch.from_numpy(gt),
                         'depth_pred': depth_pred}])


def smear_scene():
    """A 20x20x4 grid of 0.5 m voxels over [-5, 5] x [-5, 5] x [-1, 1] m, a camera at the
    lidar origin looking along +x (64x48 image, focal 32), a true vehicle at voxel
    (14, 10, 2) (centre 2.25, 0.25, 0.25 m). Predicted vehicles, by hand:
        (14, 10, 2) true;
        (12, 10, 2) false, in front of the vehicle on its camera ray: smear;
        (18, 10, 2) false, behind it on the ray through (4.25, 0.25, 0.25): smear;
        (14, 12, 2) false, beside it: the ray through (2.25, 1.25, 0.25) misses it;
        ( 4, 10, 2) false, behind the camera: no camera sees it;
        ( 6,  6, 0) ignored label: not counted.
    -> 5 object voxels, 4 false, 2 smear."""
    gt = np.full((20, 20, 4), FREE_INDEX, dtype=np.uint8)
    gt[14, 10, 2] = VEHICLE
    gt[6, 6, 0] = IGNORE_INDEX
    pred = np.full_like(gt, FREE_INDEX)
    for index in [(14, 10, 2), (12, 10, 2), (18, 10, 2), (14, 12, 2), (4, 10, 2), (6, 6, 0)]:
        pred[index] = VEHICLE
    intrinsics = np.array([[32.0, 0, 32, 0], [0, 32, 24, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    lidar2cam = np.array([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    return gt, pred, (intrinsics @ lidar2cam)[None]


def test_smear_by_hand():
    from occnet.evaluation.smear import camera_centres, smear_counts, smear_summary
    gt, pred, lidar2img = smear_scene()
    grid = dict(grid_shape=(20, 20, 4), pc_range=(-5.0, -5.0, -1.0, 5.0, 5.0, 1.0))
    counts = smear_counts(gt, pred, lidar2img, (48, 64), **grid)
    assert counts.tolist() == [5, 4, 2]
    summary = smear_summary(counts * 2)  # two such frames
    assert summary['smear_share'] == 40.0 and summary['false_object_share'] == 80.0
    assert smear_summary(np.zeros(3))['smear_share'] is None
    # a camera moved to (1, 2, 3) m: its centre is recovered from its projection
    moved = lidar2img[0].copy()
    moved[:3, 3] = -moved[:3, :3] @ np.array([1.0, 2.0, 3.0])
    assert np.allclose(camera_centres(moved[None]), [[1.0, 2.0, 3.0]])
    # without the true vehicle nothing lines up with an object
    gt[14, 10, 2] = FREE_INDEX
    assert smear_counts(gt, pred, lidar2img, (48, 64), **grid).tolist() == [5, 5, 0]


def test_metric_reports_the_smear_share():
    """The first three voxels of smear_scene on the full grid (same metres): one true vehicle
    and two smeared copies in front of and behind it: 2 of 3 object voxels are smear."""
    _, _, lidar2img = smear_scene()
    gt = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
    gt[104, 100, 8] = VEHICLE  # centre (2.25, 0.25, 0.25) m
    pred = gt.copy()
    pred[102, 100, 8] = pred[108, 100, 8] = VEHICLE
    metric = OccupancyMetric(print_table=False, smear=True)
    metric.process({'data_samples': [{'voxel_semantics': torch.from_numpy(gt),
                                      'lidar2img': lidar2img[None], 'img_shape': (48, 64)}]},
                   [{'token': 's', 'occ_pred': torch.from_numpy(pred)}])
    metrics = metric.evaluate(size=1)
    assert metrics['occ/smear_share'] == pytest.approx(200 / 3)
    assert metrics['occ/false_object_share'] == pytest.approx(200 / 3)
