"""SparseOcc's RayIoU rays: the pitch fan and the origin selection by hand."""
import math

import numpy as np

from occnet.evaluation.sparseocc_rays import sparseocc_pitch_angles, sparseocc_ray_directions
from occnet.geometry import sparseocc_ray_origins


def test_pitch_fan_and_directions():
    pitches = sparseocc_pitch_angles()
    assert len(pitches) == 39
    assert math.isclose(pitches[0], -math.pi / 4)  # k = 0: -(90 - 45) degrees
    assert math.isclose(pitches[1], -(math.pi / 2 - math.atan(2)))
    step = pitches[9] - pitches[8]  # atan(10) - atan(9), then constant
    assert np.allclose(np.diff(pitches[9:]), step)
    assert pitches[-2] < 0.21 <= pitches[-1]
    dirs = sparseocc_ray_directions()
    assert dirs.shape == (39 * 360, 3) and np.allclose(np.linalg.norm(dirs, axis=1), 1)
    # pitch-major: ray 90 is the lowest pitch at azimuth 90 degrees (+y)
    assert np.allclose(dirs[90], [0, math.cos(pitches[0]), math.sin(pitches[0])], atol=1e-12)


def pose(x, y, z=0.0):
    out = np.eye(4)
    out[:3, 3] = x, y, z
    return out


def test_origins_in_the_ego_frame_cut_at_39_m_and_thinned_to_8():
    """Lidar 1 m ahead of and 2 m above the ego origin; the car drives along global +x in
    5 m steps, frame 3 is the current one. Frame k's lidar origin lies at 5 (k - 3) m in
    the current lidar frame, so at (5 (k - 3) + 1, 0, 2) in the current ego frame: frames
    with |x| >= 39 m (k = 11, 12, ...) are dropped."""
    lidar2ego = pose(1.0, 0.0, 2.0)
    scene = [pose(5.0 * k, 0.0) @ lidar2ego for k in range(20)]  # lidar2global
    origins = sparseocc_ray_origins(lidar2ego, scene[3], scene[:5])
    assert np.allclose(origins, [[5 * (k - 3) + 1, 0, 2] for k in range(5)])
    origins = sparseocc_ray_origins(lidar2ego, scene[3], scene)
    kept = [5 * (k - 3) + 1 for k in range(20) if abs(5 * (k - 3) + 1) < 39]  # k = 0..10
    assert len(kept) == 11
    picked = [kept[i] for i in np.round(np.linspace(0, 10, 8)).astype(int)]
    # linspace(0, 10, 8) = 0, 1.43, 2.86, 4.29, 5.71, 7.14, 8.57, 10, rounded
    assert picked == [-14, -9, 1, 6, 16, 21, 31, 36]  # indices 0 1 3 4 6 7 9 10
    assert np.allclose(origins[:, 0], picked) and np.allclose(origins[:, 1:], [0, 2])


def test_exit_depth_and_an_occ3d_ray_by_hand():
    """Occ3D grid (0.4 m voxels from -40 m). A ray along +x from (0.2, 0.2, 0.3): ground
    truth car (4) in the voxel spanning x 4.0-4.4 m, prediction car in 4.8-5.2 m. Entry
    depths 3.8 and 4.6 m, exit depths 4.2 and 5.0 m (SparseOcc's): 0.8 m apart, a true
    positive at 1, 2 and 4 m. A second ray along -x sees nothing in the ground truth and is
    dropped, though the prediction puts a truck (10) there."""
    from occnet.descriptions import OCC3D_NUSCENES as OCC3D
    from occnet.evaluation.ray_iou import cast_rays, frame_ray_confusion, summarize_ray_iou
    gt = np.full(OCC3D.grid_shape, OCC3D.free_index, dtype=np.uint8)
    pred = gt.copy()
    # index = (metres - lower bound) / 0.4: x 4.0 m -> 110, y 0.2 m -> 100, z 0.3 m -> 3
    gt[110, 100, 3] = pred[112, 100, 3] = 4
    pred[80, 100, 3] = 10  # x -8.0 m
    origin, dirs = np.array([[0.2, 0.2, 0.3]]), np.array([[1.0, 0, 0], [-1.0, 0, 0]])
    entry = cast_rays(gt, origin, dirs, dataset=OCC3D)
    exit_ = cast_rays(gt, origin, dirs, dataset=OCC3D, depth_at='exit')
    assert np.allclose(entry[1][:1], [3.8]) and np.allclose(exit_[1][:1], [4.2])
    assert list(exit_[0]) == [4, -1] and np.isinf(exit_[1][1])
    counts = frame_ray_confusion(gt, pred, origin, dirs, dataset=OCC3D, depth_at='exit')
    assert counts.shape == (3, 3, 17)
    assert counts[:, 0, 4].tolist() == [1, 1, 1] and counts[:, 1:].sum() == 0
    summary = summarize_ray_iou(counts, class_names=OCC3D.class_names)
    assert summary['ray_iou'] == 100.0 and list(summary['per_class']) == ['car']
