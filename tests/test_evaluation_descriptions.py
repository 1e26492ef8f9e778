"""Evaluation on another dataset's description: Occ3D-nuScenes (18 labels, free = 17, a 0.4 m
grid over [-40, 40] m) and a tiny custom one; every figure counted by hand."""
import numpy as np
import pytest
import torch

from occnet.descriptions import OCC3D_NUSCENES, OPENSCENE, OccDescription, get_description
from occnet.evaluation import (OccupancyMetric, confusion_matrix, format_table,
                               summarize_confusion, summarize_split)
from occnet.evaluation.occupancy_metrics import flow_error_sums, frame_confusions, near_voxels
from occnet.evaluation.ray_iou import cast_rays, frame_ray_confusion, ray_iou_summary
from occnet.evaluation.smear import smear_counts
from occnet.geometry import origins_in_frame
from occnet.registry import METRICS

FREE, IGNORE = OCC3D_NUSCENES.free_index, OCC3D_NUSCENES.ignore_index  # 17, 255
CAR, TRUCK, DRIVEABLE, VEGETATION = 4, 10, 11, 16

# 2 classes on a 20 x 20 x 4 grid of 0.5 m voxels over [-5, 5] x [-5, 5] x [-1, 1] m
TINY = OccDescription(
    name='tiny', class_names=('car', 'road'), free_index=2, ignore_index=255, evaluated=(0, 1),
    foreground=(0,), palette=((255, 0, 0), (90, 90, 90), (255, 255, 255)),
    point_cloud_range=(-5.0, -5.0, -1.0, 5.0, 5.0, 1.0), voxel_size=0.5, grid_shape=(20, 20, 4),
    grid_frame='ego', camera_names=('CAM_FRONT',), image_size=(64, 48))


def occ3d_frame():
    """4x4x2 grids, 17 = free. By hand (ignored voxel (3,3,1) left out, 31 voxels):
        (0,0,0) gt vegetation  pred vegetation -> vegetation TP
        (0,1,0) gt vegetation  pred free       -> vegetation FN, geometric FN
        (1,0,0) gt truck       pred truck      -> truck TP
        (1,1,0) gt driveable   pred driveable  -> driveable_surface TP (11 is a class here)
        (2,2,0) gt free        pred car        -> car FP, geometric FP
        (3,3,1) gt ignore      pred 5          -> skipped
    """
    gt = np.full((4, 4, 2), FREE, dtype=np.uint8)
    pred = gt.copy()
    gt[0, 0, 0], pred[0, 0, 0] = VEGETATION, VEGETATION
    gt[0, 1, 0] = VEGETATION
    gt[1, 0, 0], pred[1, 0, 0] = TRUCK, TRUCK
    gt[1, 1, 0], pred[1, 1, 0] = DRIVEABLE, DRIVEABLE
    pred[2, 2, 0] = CAR
    gt[3, 3, 1], pred[3, 3, 1] = IGNORE, 5
    return gt, pred


def test_occ3d_confusion_matrix_has_18_labels_with_free_17():
    gt, pred = occ3d_frame()
    cm = confusion_matrix(gt, pred, dataset='occ3d_nuscenes')
    expected = np.zeros((18, 18), dtype=np.int64)
    expected[VEGETATION, VEGETATION] = expected[VEGETATION, FREE] = 1
    expected[TRUCK, TRUCK] = expected[DRIVEABLE, DRIVEABLE] = expected[FREE, CAR] = 1
    expected[FREE, FREE] = 31 - 5
    np.testing.assert_array_equal(cm, expected)
    with pytest.raises(ValueError, match='class 17'):  # OpenScene has no label 17
        confusion_matrix(gt, pred)
    bad = pred.copy()
    bad[0, 0, 0] = 18
    with pytest.raises(ValueError, match=r'class 18; expected 0\.\.17 \(free = 17\)'):
        confusion_matrix(gt, bad, dataset=OCC3D_NUSCENES)


def test_occ3d_summary_by_hand():
    cm = confusion_matrix(*occ3d_frame(), dataset=OCC3D_NUSCENES)
    summary = summarize_confusion(cm, dataset=OCC3D_NUSCENES.metainfo())
    per_class = summary['per_class']
    assert list(per_class) == list(OCC3D_NUSCENES.class_names)  # 0..16, others included
    assert per_class['vegetation'] == pytest.approx(50.0)  # TP 1, FN 1
    assert per_class['truck'] == 100.0 and per_class['driveable_surface'] == 100.0
    assert per_class['car'] == 0.0  # FP 1
    assert per_class['others'] is None and per_class['bus'] is None
    assert summary['miou'] == pytest.approx((50 + 100 + 100 + 0) / 4)
    assert summary['fg_miou'] == pytest.approx((100 + 0) / 2)  # truck, car: objects 0..10
    assert 'miou_16' not in summary  # Occ3D has no 16-slot baseline mean
    # occupied: gt {000, 010, 100, 110}, pred {000, 100, 110, 220} -> TP 3, FP 1, FN 1
    assert summary['iou'] == pytest.approx(60.0)
    assert summary['precision'] == pytest.approx(75.0)
    assert summary['recall'] == pytest.approx(75.0)
    assert summary['num_voxels'] == 31
    with pytest.raises(ValueError, match=r"\(18, 18\) for dataset 'occ3d_nuscenes'"):
        summarize_confusion(np.zeros((12, 12)), dataset='occ3d_nuscenes')


def test_occ3d_near_far_split_uses_its_0_4_m_grid():
    near = near_voxels(dataset='occ3d_nuscenes')
    assert near.shape == (200, 200, 16)
    # voxel centres: x = -40 + (i + 0.5) * 0.4 m -> 24.6 m near, 25.4 m far
    assert near[161, 100, 0] and not near[163, 100, 0]
    assert not near_voxels()[161, 100, 0]  # OpenScene: -50 + 161.5 * 0.5 = 30.75 m
    gt = np.full((200, 200, 16), FREE, dtype=np.uint8)
    pred = gt.copy()
    gt[161, 100, 5] = pred[161, 100, 5] = TRUCK  # near TP
    gt[163, 100, 5] = TRUCK  # far FN
    cms = frame_confusions(gt, pred, dataset=OCC3D_NUSCENES)
    assert cms.shape == (3, 18, 18)
    summary = summarize_split(cms, num_frames=1, dataset=OCC3D_NUSCENES)
    assert summary['near']['per_class']['truck'] == 100.0
    assert summary['far']['per_class']['truck'] == 0.0
    assert summary['iou_near'] == 100.0 and summary['iou_far'] == 0.0
    assert 'miou_16' not in summary and 'miou_16_near' not in summary
    table = format_table(summary)
    assert 'vegetation' in table and 'driveable_surface' in table


def test_flow_error_counts_the_datasets_foreground():
    gt = np.full((4, 4, 2), FREE, dtype=np.uint8)
    pred = gt.copy()
    gt_flow = np.zeros((4, 4, 2, 2))
    pred_flow = np.zeros_like(gt_flow)
    gt[0, 0, 0] = pred[0, 0, 0] = TRUCK  # an Occ3D object (10 is background in OpenScene)
    gt_flow[0, 0, 0] = [3.0, 4.0]
    gt[1, 0, 0] = pred[1, 0, 0] = VEGETATION  # not an object
    gt_flow[1, 0, 0] = [1.0, 0.0]
    sums = flow_error_sums(gt, pred, gt_flow, pred_flow, dataset='occ3d_nuscenes')
    np.testing.assert_allclose(sums, [0.0, 0, 5.0, 1])
    np.testing.assert_allclose(flow_error_sums(gt, pred, gt_flow, pred_flow), [0, 0, 0, 0])


def smear_camera():
    """One camera at the origin looking along +x, 64x48 pixels, focal 32 (lidar2img (1, 4, 4))."""
    intrinsics = np.array([[32.0, 0, 32, 0], [0, 32, 24, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    lidar2cam = np.array([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    return (intrinsics @ lidar2cam)[None]


def smear_grids(free, obj):
    """On TINY's grid: a true object at (14, 10, 2) (centre 2.25, 0.25, 0.25 m), predicted
    there and at (12, 10, 2) in front of it and (18, 10, 2) behind it on the camera ray;
    an ignored label under a predicted object at (6, 6, 0).
    -> 3 object voxels counted, 2 false, both smear."""
    gt = np.full((20, 20, 4), free, dtype=np.uint8)
    gt[14, 10, 2] = obj
    gt[6, 6, 0] = 255
    pred = np.full_like(gt, free)
    for index in [(14, 10, 2), (12, 10, 2), (18, 10, 2), (6, 6, 0)]:
        pred[index] = obj
    return gt, pred


def test_smear_uses_the_descriptions_grid_and_objects():
    gt, pred = smear_grids(free=TINY.free_index, obj=0)
    assert smear_counts(gt, pred, smear_camera(), (48, 64), dataset=TINY).tolist() == [3, 2, 2]
    gt, pred = smear_grids(free=FREE, obj=TRUCK)
    grid = dict(grid_shape=(20, 20, 4), pc_range=TINY.point_cloud_range, voxel_size=0.5)
    assert smear_counts(gt, pred, smear_camera(), (48, 64), dataset=OCC3D_NUSCENES,
                        **grid).tolist() == [3, 2, 2]
    # class 10 is OpenScene's background: no object voxel at all
    assert smear_counts(gt, pred, smear_camera(), (48, 64), **grid).tolist() == [0, 0, 0]


def occ3d_walls():
    """Occ3D grid with a vegetation wall at x index 150 (x = 20.0 m) and a driveable-surface
    wall at y index 130 (y = 12.0 m)."""
    grid = np.full((200, 200, 16), FREE, dtype=np.uint8)
    grid[150] = VEGETATION
    grid[:, 130] = DRIVEABLE
    return grid


def test_rays_march_the_occ3d_grid():
    grid = occ3d_walls()
    classes, depths = cast_rays(grid, [[0.0, 0.0, 0.0]], [[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0]],
                                dataset='occ3d_nuscenes')
    assert classes.tolist() == [VEGETATION, DRIVEABLE, -1]
    assert depths[0] == pytest.approx(20.0) and depths[1] == pytest.approx(12.0)
    counts = frame_ray_confusion(grid, grid, np.zeros((1, 3)), dataset=OCC3D_NUSCENES)
    assert counts.shape == (3, 3, 17)  # thresholds, TP/FP/FN, classes 0..16
    summary = ray_iou_summary(counts, dataset=OCC3D_NUSCENES)
    assert summary['ray_iou'] == pytest.approx(100.0)
    assert set(summary['ray_iou_per_class']) == {'vegetation', 'driveable_surface'}
    cur, other = np.eye(4), np.eye(4)
    other[0, 3] = 45.0  # inside OpenScene's 50 m, outside Occ3D's 40 m
    assert len(origins_in_frame(cur, [other], dataset=OCC3D_NUSCENES)) == 1
    assert len(origins_in_frame(cur, [other])) == 2


def feed(metric, token='f'):
    gt, pred = occ3d_frame()
    metric.process({'data_samples': [{'voxel_semantics': torch.from_numpy(gt),
                                      'mask_camera': torch.ones(gt.shape, dtype=torch.bool)}]},
                   [{'token': token, 'occ_pred': torch.from_numpy(pred)}])


def test_metric_takes_its_description_from_dataset_meta():
    metric = METRICS.build(dict(type='OccupancyMetric', print_table=False))
    metric.dataset_meta = OCC3D_NUSCENES.metainfo()  # as the runner does, after construction
    assert metric.description == OCC3D_NUSCENES
    feed(metric)
    metrics = metric.evaluate(size=1)
    assert metrics['occ/vegetation_iou'] == pytest.approx(50.0)
    assert metrics['occ/miou'] == pytest.approx(62.5)
    assert metrics['occ/fg_miou_masked'] == pytest.approx(50.0)
    assert not any('miou_16' in key for key in metrics)
    gt, pred = occ3d_frame()
    cms = frame_confusions(gt, pred, dataset=OCC3D_NUSCENES)
    expected = summarize_split(cms, cms, 1, 1, dataset=OCC3D_NUSCENES)
    assert metric.last_summary == {**expected, 'protocol_miou': expected['miou_masked']}


@pytest.mark.parametrize('dataset, protocol_key', [('occ3d_nuscenes', 'miou_masked'),
                                                   ('openscene', 'miou')])
def test_metric_reports_the_published_protocol_miou(dataset, protocol_key):
    # a wrong prediction the camera cannot see: the masked mIoU (Occ3D's protocol) ignores
    # it, the all-voxel mIoU (OpenScene's) counts it
    desc = get_description(dataset)
    gt = np.full((4, 4, 2), desc.free_index, dtype=np.uint8)
    gt[0, 0, 0] = gt[1, 0, 0] = 0  # vehicle / others, evaluated in both
    pred = gt.copy()
    pred[3, 3, 1] = 0  # false positive
    mask = np.ones(gt.shape, dtype=bool)
    mask[3, 3, 1] = False
    metric = OccupancyMetric(print_table=False, dataset=dataset)
    metric.process({'data_samples': [{'voxel_semantics': torch.from_numpy(gt),
                                      'mask_camera': torch.from_numpy(mask)}]},
                   [{'token': 't', 'occ_pred': torch.from_numpy(pred)}])
    metrics = metric.evaluate(size=1)
    # class 0: 2 / 3 with the false positive, 2 / 2 without; the only class present
    assert metrics['occ/miou'] == pytest.approx(100 * 2 / 3)
    assert metrics['occ/miou_masked'] == pytest.approx(100.0)
    assert metrics['occ/protocol_miou'] == metrics[f'occ/{protocol_key}']
    name = desc.class_names[0]
    assert metrics[f'occ/{name}_iou'] == pytest.approx(100 * 2 / 3)
    assert metrics[f'occ/{name}_iou_masked'] == pytest.approx(100.0)


def test_metric_falls_back_to_its_dataset_argument():
    metric = OccupancyMetric(print_table=False, dataset='occ3d_nuscenes')
    metric.dataset_meta = {'classes': ('car',)}  # a metainfo that is no description
    feed(metric)
    assert metric.evaluate(size=1)['occ/truck_iou'] == 100.0
    openscene = OccupancyMetric(print_table=False)
    openscene.dataset_meta = {'classes': ('car',)}
    assert openscene.description == OPENSCENE
    with pytest.raises(ValueError, match='frame token f: prediction holds class 17'):
        feed(openscene)
    empty = OccupancyMetric(print_table=False)
    empty.dataset_meta = OCC3D_NUSCENES.metainfo()  # beats the 'openscene' default
    empty.evaluate(size=0)
    assert len(empty.last_summary['per_class']) == 17
    assert empty.last_summary['num_voxels'] == 0
