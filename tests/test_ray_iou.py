"""RayIoU: the vectorised ray casting against a brute-force march, and the counts by hand."""
import time

import numpy as np
import pytest

from occnet.evaluation.ray_iou import (cast_rays, frame_ray_confusion, ray_confusion,
                                       ray_directions, summarize_ray_iou)
from occnet.geometry import origins_in_frame

SMALL_RANGE = (-5.0, -5.0, -2.0, 5.0, 5.0, 2.0)  # 10 x 10 x 4 voxels of 1 m


def brute_force(grid, origin, direction, pc_range, voxel, dt=1e-3):
    """March in tiny steps; first occupied voxel's class and entry depth (within dt)."""
    lower, shape = np.asarray(pc_range[:3]), np.array(grid.shape)
    t = 0.0
    while True:
        cell = np.floor((origin + t * direction - lower) / voxel).astype(int)
        if np.any(cell < 0) or np.any(cell >= shape):
            return -1, np.inf
        if grid[tuple(cell)] != 11:
            return int(grid[tuple(cell)]), t
        t += dt


def test_vectorised_casting_matches_a_brute_force_march():
    rng = np.random.default_rng(0)
    grid = np.full((10, 10, 4), 11, dtype=np.uint8)
    occupied = rng.random(grid.shape) < 0.08
    grid[occupied] = rng.integers(0, 11, occupied.sum())
    origins = np.array([[0.3, -0.2, 0.1], [-2.6, 1.7, -0.4]])
    directions = rng.normal(size=(60, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    directions[:4] = [[1, 0, 0], [0, -1, 0], [0, 0, 1], [np.sqrt(0.5), np.sqrt(0.5), 0]]
    classes, depths = cast_rays(grid, origins, directions, pc_range=SMALL_RANGE, voxel_size=1.0)
    hits = 0
    for i, (origin, direction) in enumerate((o, d) for o in origins for d in directions):
        cls, depth = brute_force(grid, origin, direction, SMALL_RANGE, 1.0)
        assert classes[i] == cls, i
        if cls >= 0:
            hits += 1
            assert abs(depths[i] - depth) < 2e-3, (i, depths[i], depth)
    assert hits > 30


def test_a_ray_straight_into_a_wall_by_hand():
    grid = np.full((10, 10, 4), 11, dtype=np.uint8)
    grid[7, :, :] = 9  # a barrier wall at x in [2, 3) m
    classes, depths = cast_rays(grid, [[0.5, 0.5, 0.5]], [[1.0, 0, 0], [-1.0, 0, 0],
                                                         [0.6, 0.8, 0.0]],
                                pc_range=SMALL_RANGE, voxel_size=1.0)
    assert classes.tolist() == [9, -1, 9]
    assert depths[0] == pytest.approx(1.5) and depths[1] == np.inf
    assert depths[2] == pytest.approx(1.5 / 0.6)  # x advances 0.6 m per metre of ray


def test_ray_confusion_and_summary_by_hand():
    # ray 0: gt vehicle at 10 m, pred vehicle at 11.5 m -> TP at 2 and 4 m, miss at 1 m
    # ray 1: gt pedestrian at 5 m, pred vehicle at 5 m -> FN pedestrian, FP vehicle
    # ray 2: gt hits nothing -> not evaluated, whatever the prediction
    gt_class, gt_depth = np.array([0, 7, -1]), np.array([10.0, 5.0, np.inf])
    pred_class, pred_depth = np.array([0, 0, 7]), np.array([11.5, 5.0, 3.0])
    counts = ray_confusion(gt_class, gt_depth, pred_class, pred_depth, num_classes=11)
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
    assert tp[:, 0].tolist() == [0, 1, 1] and fn[:, 7].tolist() == [1, 1, 1]
    assert fp[:, 0].tolist() == [2, 1, 1] and fn[:, 0].tolist() == [1, 0, 0]
    summary = summarize_ray_iou(counts)
    # vehicle: 1 m -> 0 / 3, 2 m and 4 m -> 1 / 2; pedestrian 0 everywhere
    assert summary['per_class']['0'] == pytest.approx(100.0 / 3)
    assert summary['ray_iou@2m'] == pytest.approx(25.0)
    assert summary['ray_iou'] == pytest.approx((0 + 25 + 25) / 3)


def test_origins_of_nearby_frames_in_the_current_frame():
    cur = np.eye(4)
    cur[:3, 3] = [100.0, 50.0, 0.0]
    other = cur.copy()
    other[:3, 3] = [110.0, 50.0, 0.0]
    far = cur.copy()
    far[:3, 3] = [200.0, 50.0, 0.0]
    origins = origins_in_frame(cur, [other, far])
    np.testing.assert_allclose(origins, [[0, 0, 0], [10, 0, 0]])


def test_full_frame_is_fast_and_perfect_prediction_scores_100():
    grid = np.full((200, 200, 16), 11, dtype=np.uint8)
    grid[:, :, 3] = 10  # ground
    rng = np.random.default_rng(1)
    for _ in range(60):
        x, y = rng.integers(0, 190, 2)
        grid[x:x + 8, y:y + 4, 4:7] = rng.choice([0, 5, 7, 9])
    origins = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [-10.0, 2.0, 0.0]])
    start = time.perf_counter()
    counts = frame_ray_confusion(grid, grid, origins)
    seconds = time.perf_counter() - start
    summary = summarize_ray_iou(counts)
    assert summary['ray_iou'] == pytest.approx(100.0)
    assert counts[0, 0].sum() > 0.5 * len(ray_directions()) * len(origins)
    assert seconds < 10.0  # the benchmark records the time; this only catches a blow-up


def test_scene_ray_origins_use_the_neighbours_of_the_same_scene():
    from occnet.evaluation.ray_iou import scene_ray_origins

    def frame(token, scene, t, x):
        pose = np.eye(4)
        pose[0, 3] = x
        return dict(token=token, scene_token=scene, timestamp=t, lidar2global=pose,
                    lidar2ego=np.eye(4))
    infos = [frame('c', 's1', 2, 20.0), frame('a', 's1', 0, 0.0), frame('b', 's1', 1, 10.0),
             frame('d', 's1', 3, 30.0), frame('z', 's2', 1, 15.0)]
    origins = scene_ray_origins(infos, max_offset=1)
    np.testing.assert_allclose(origins['b'], [[0, 0, 0], [-10, 0, 0], [10, 0, 0]])
    np.testing.assert_allclose(origins['a'], [[0, 0, 0], [10, 0, 0]])
    np.testing.assert_allclose(origins['z'], [[0, 0, 0]])  # alone in its scene
