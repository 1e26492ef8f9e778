"""Pure geometry: poses, projection, sparse <-> dense occupancy."""
import numpy as np
import pytest

from occnet.descriptions import OCC3D_NUSCENES, OPENSCENE, OccDescription
from occnet.geometry import (dense_to_sparse, flow_sparse_to_dense, index1d_to_xyz,
                             lidar2img_matrix, points_to_voxel_indices, pose_matrix,
                             project_points, relative_pose, sparse_to_dense, voxel_centers,
                             xyz_to_index1d)


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
    assert (dense != OPENSCENE.free_index).sum() == 500
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


# a 4 x 3 x 2 grid of 1 m voxels over [0, 4] x [0, 3] x [0, 2], labels 0, 1 and free = 2
SMALL = OccDescription(
    name='small', class_names=('car', 'road'), free_index=2, ignore_index=255, evaluated=(0, 1),
    foreground=(0,), palette=((255, 0, 0), (128, 128, 128), (255, 255, 255)),
    point_cloud_range=(0.0, 0.0, 0.0, 4.0, 3.0, 2.0), voxel_size=1.0, grid_shape=(4, 3, 2),
    grid_frame='ego', camera_names=('CAM_A', 'CAM_B'), image_size=(64, 32))


def test_voxel_grid_of_the_occ3d_description():
    centres = voxel_centers(dataset=OCC3D_NUSCENES)  # 0.4 m voxels over [-40, 40]^2 x [-1, 5.4]
    assert centres.shape == (200, 200, 16, 3)
    np.testing.assert_allclose(centres[0, 0, 0], [-39.8, -39.8, -0.8])
    np.testing.assert_allclose(centres[199, 199, 15], [39.8, 39.8, 5.2])
    points = np.array([[0.1, -0.1, 0.0], [0.0, 0.0, 5.5]])
    idx, inside = points_to_voxel_indices(points, dataset=OCC3D_NUSCENES)
    assert idx[0].tolist() == [100, 99, 2] and inside.tolist() == [True, False]
    assert points_to_voxel_indices(points)[0][0].tolist() == [100, 99, 8]  # OpenScene's grid
    # explicit values keep priority over the description's
    corner = voxel_centers((2, 2, 2), voxel_size=1.0, dataset=OCC3D_NUSCENES)[1, 1, 1]
    assert corner.tolist() == pytest.approx([-38.5, -38.5, 0.5])


def test_sparse_dense_use_the_descriptions_grid_and_free_label():
    # index1d = z * 12 + y * 4 + x on the 4 x 3 x 2 grid
    assert xyz_to_index1d([[1, 2, 1]], dataset=SMALL).tolist() == [21]
    assert index1d_to_xyz([21, 11], dataset=SMALL).tolist() == [[1, 2, 1], [3, 2, 0]]
    sparse = np.array([[11, 0], [21, 1]])
    dense = sparse_to_dense(sparse, dataset=SMALL)
    assert dense.shape == (4, 3, 2) and dense[3, 2, 0] == 0 and dense[1, 2, 1] == 1
    assert (dense == 2).sum() == 22  # every other voxel is SMALL's free label
    np.testing.assert_array_equal(dense_to_sparse(dense, dataset=SMALL), sparse)
    flow = flow_sparse_to_dense(sparse, [[1.0, 2.0], [3.0, 4.0]], dataset=SMALL)
    assert flow.shape == (4, 3, 2, 2) and flow[1, 2, 1].tolist() == [3.0, 4.0]
    # Occ3D: free is 17, so an OpenScene free label (11) is an occupied voxel there
    occ3d = sparse_to_dense(np.array([[0, 11]]), dataset=OCC3D_NUSCENES)
    assert occ3d[0, 0, 0] == 11 and (occ3d == 17).sum() == 200 * 200 * 16 - 1
    assert dense_to_sparse(occ3d, dataset=OCC3D_NUSCENES).tolist() == [[0, 11]]


def test_datasets_do_not_import_evaluation():
    # the ray origins the test samples carry are geometry (occnet.geometry), so loading data
    # never pulls in the metrics
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parents[1] / 'projects' / 'occnet' / 'datasets'
    offenders = [str(path.relative_to(root)) for path in sorted(root.rglob('*.py'))
                 if re.search(r'^\s*(from|import)\s+occnet\.evaluation', path.read_text(),
                              re.MULTILINE)]
    assert len(list(root.rglob('*.py'))) > 20 and offenders == []
