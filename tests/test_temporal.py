"""Previous-frame links, training queues and can_bus deltas, worked by hand."""
import numpy as np

from occnet.datasets.temporal import can_bus_with_deltas, link_previous, sample_queue


def test_link_previous_follows_scene_and_time_not_list_order():
    # frames listed out of order; scene 'a' has a 2 s hole before its last frame
    scenes = ['b', 'a', 'a', 'b', 'a', 'a']
    times_s = [0.0, 0.5, 0.0, 0.5, 3.0, 1.0]
    prev, scene_ids = link_previous(scenes, np.array(times_s) * 1e6, max_gap_s=1.5)
    assert prev.tolist() == [-1, 2, -1, 0, -1, 1]
    assert scene_ids.tolist() == [0, 1, 1, 0, 1, 1]  # ids in order of first appearance


def test_sample_queue_nearest_frames_and_padding_at_scene_start():
    prev = np.array([-1, 0, 1, 2, 3])
    assert sample_queue(prev, 4, 3) == ([2, 3, 4], [True, True, True])
    assert sample_queue(prev, 1, 3) == ([0, 0, 1], [False, True, True])
    assert sample_queue(prev, 0, 3) == ([0, 0, 0], [False, False, True])
    assert sample_queue(prev, 3, 1) == ([3], [True])


def test_sample_queue_random_window_stays_in_scene_and_in_time_order():
    prev = np.array([-1, 0, 1, 2, 3, -1, 5])  # frame 5 starts a new scene
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        indices, valid = sample_queue(prev, 4, 3, window=3, rng=rng)
        assert indices[-1] == 4 and valid == [True] * 3
        assert set(indices[:2]) <= {1, 2, 3} and indices[0] < indices[1]
        seen.add(tuple(indices))
    assert seen == {(1, 2, 4), (1, 3, 4), (2, 3, 4)}
    # a window longer than the scene's history takes what there is
    assert sample_queue(prev, 6, 3, window=3, rng=rng) == ([5, 5, 6], [False, True, True])


def pose(x, y, yaw_deg):
    yaw = np.radians(yaw_deg)
    mat = np.eye(4)
    mat[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    mat[:3, 3] = [x, y, 0.0]
    return mat


def test_can_bus_deltas_by_hand():
    can_bus = np.arange(18, dtype=np.float64)
    out = can_bus_with_deltas(can_bus, pose(10, 0, 30), pose(9, 1, 20))
    np.testing.assert_allclose(out[:3], [1, -1, 0], atol=1e-6)
    np.testing.assert_allclose(out[3:16], can_bus[3:16])
    np.testing.assert_allclose(out[16:], [np.radians(30), 10.0], atol=1e-5)
    wrapped = can_bus_with_deltas(can_bus, pose(0, 0, -179), pose(0, 0, 179))
    np.testing.assert_allclose(wrapped[17], 2.0, atol=1e-4)
    first = can_bus_with_deltas(can_bus, pose(10, 0, 30))
    assert first[:3].tolist() == [0, 0, 0] and first[17] == 0.0 and out.dtype == np.float32
