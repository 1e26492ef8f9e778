"""Pure geometry: poses, projection, sparse <-> dense occupancy."""
import numpy as np

from occnet.constants import FREE_INDEX
from occnet.geometry import (dense_to_sparse, index1d_to_xyz, lidar2img_matrix, pose_matrix,
                             project_points, relative_pose, sparse_to_dense, xyz_to_index1d)


def test_index1d_layout_matches_format():
    # index1d = z * 40000 + y * 200 + x
    assert xyz_to_index1d(np.array([[3, 2, 1]]))[0] == 1 * 40000 + 2 * 200 + 3
    assert index1d_to_xyz(np.array([40000 * 15 + 200 * 199 + 7])).tolist() == [[7, 199, 15]]


def test_sparse_dense_sparse_round_trip():
    rng = np.random.default_rng(0)
    index1d = np.sort(rng.choice(640000, size=500, replace=False))
    sparse = np.stack([index1d, rng.integers(0, 11, size=500)], axis=1)
    dense = sparse_to_dense(sparse)
    assert dense.shape == (200, 200, 16) and dense.dtype == np.uint8
    assert (dense != FREE_INDEX).sum() == 500
    x, y, z = index1d_to_xyz(index1d[:1])[0]
    assert dense[x, y, z] == sparse[0, 1]
    np.testing.assert_array_equal(dense_to_sparse(dense), sparse)


def test_projection_uses_inverse_rotation_and_scaled_intrinsic():
    # camera 1 m left of the lidar, looking along lidar +y (left): cam z = +y, cam x = -x...
    # columns of sensor2lidar_rotation are the camera axes in lidar coordinates
    right, down, forward = np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), np.array([0, 1.0, 0])
    cam = dict(sensor2lidar_rotation=np.stack([right, down, forward], axis=1),
               sensor2lidar_translation=np.array([0.0, 1.0, 0.0]),
               cam_intrinsic=np.array([[100.0, 0, 320], [0, 100.0, 240], [0, 0, 1]]))
    point = np.array([[2.0, 11.0, -1.0]])  # 10 m in front of the camera, 2 m right, 1 m down
    uv, depth = project_points(point, lidar2img_matrix(cam))
    assert np.isclose(depth[0], 10.0)
    np.testing.assert_allclose(uv[0], [320 + 100 * 2 / 10, 240 + 100 * 1 / 10])
    uv_half, _ = project_points(point, lidar2img_matrix(cam, scale=(0.5, 0.5)))
    np.testing.assert_allclose(uv_half[0], uv[0] * 0.5)


def test_relative_pose_maps_points_between_frames():
    a = pose_matrix([10.0, 0, 0], [1.0, 0, 0, 0])
    yaw = np.pi / 2
    b = pose_matrix([10.0, 5.0, 0], [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
    a2b = relative_pose(a, b)
    # a's origin is global (10, 0); in b (at (10, 5), facing +y) that is 5 m behind: (-5, 0)
    np.testing.assert_allclose((a2b @ [0, 0, 0, 1])[:3], [-5, 0, 0], atol=1e-12)
