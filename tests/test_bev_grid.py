"""BEV grid geometry: reference points, camera projection, ego-motion alignment."""
import math

import numpy as np
import torch

from occnet.models.bev_encoders.bev_grid import (align_prev_bev, bev_cell_centers,
                                                 bev_reference_points_2d,
                                                 pillar_reference_points, project_to_cameras)

PC_RANGE = (-50.0, -50.0, -4.0, 50.0, 50.0, 4.0)


def test_cell_centres_and_query_order():
    centres = bev_cell_centers(4, 5, PC_RANGE)
    # query index = ix * bev_w + iy; cells are 25 m along x and 20 m along y
    assert torch.allclose(centres[0], torch.tensor([-37.5, -40.0]))
    assert torch.allclose(centres[1 * 5 + 2], torch.tensor([-12.5, 0.0]))
    ref = bev_reference_points_2d(4, 5)
    assert torch.allclose(ref[1 * 5 + 2], torch.tensor([2.5 / 5, 1.5 / 4]))


def test_pillar_anchor_heights():
    ref = pillar_reference_points(2, 2, 4, PC_RANGE)
    assert ref.shape == (4, 4, 3)
    assert torch.allclose(ref[0, :, 2], torch.tensor([-3.0, -1.0, 1.0, 3.0]))


def test_projection_hits_expected_pixel_and_mask():
    # a pinhole camera looking along lidar +x: u = 100 + 50 * (-y) / x, v = 60 + 50 * (-z) / x
    lidar2cam = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    intrinsic = np.array([[50, 0, 100, 0], [0, 50, 60, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    lidar2img = torch.tensor(intrinsic @ lidar2cam, dtype=torch.float32).view(1, 1, 4, 4)
    points = torch.tensor([[[10.0, -2.0, 1.0]], [[-10.0, 0.0, 0.0]], [[10.0, 30.0, 0.0]]])
    uv, visible = project_to_cameras(points, lidar2img, torch.tensor([[120, 200]]), (128, 224))
    # first point: u = 100 + 50 * 2 / 10 = 110, v = 60 - 50 * 1 / 10 = 55
    assert torch.allclose(uv[0, 0, 0, 0], torch.tensor([110 / 224, 55 / 128]))
    assert visible[0, 0, :, 0].tolist() == [True, False, False]  # behind; u = -50 left of image


def test_alignment_moves_feature_by_ego_motion():
    bev_h = bev_w = 10  # 10 m cells
    prev = torch.zeros(1, bev_h * bev_w, 1)
    prev[0, 6 * bev_w + 5, 0] = 1.0  # previous frame: feature at cell (6, 5), centre (15, 5)
    # the ego drove 10 m forward: a point at x in the previous frame is at x - 10 now,
    # so cur2prev adds 10 m to x
    cur2prev = torch.eye(4)[None]
    cur2prev[0, 0, 3] = 10.0
    aligned = align_prev_bev(prev, cur2prev, bev_h, bev_w, PC_RANGE).view(bev_h, bev_w)
    assert aligned[5, 5] == 1.0 and aligned.sum() == 1.0


def test_alignment_rotation():
    bev_h = bev_w = 10
    prev = torch.zeros(1, bev_h * bev_w, 1)
    prev[0, 8 * bev_w + 5, 0] = 1.0  # centre (35, 5): 35 m ahead, 5 m left
    # the ego turned left by 90 degrees in place: previous (x, y) is current (y', -x')...
    # current point p maps to previous frame by rotating +90 deg: cur2prev = Rz(+90)
    c, s = math.cos(math.pi / 2), math.sin(math.pi / 2)
    cur2prev = torch.tensor([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
                            dtype=torch.float32)[None]
    aligned = align_prev_bev(prev, cur2prev, bev_h, bev_w, PC_RANGE).view(bev_h, bev_w)
    # current cell whose centre rotates onto (35, 5): p = Rz(-90) (35, 5) = (5, -35) -> cell
    # (ix, iy) = ((5 + 50) / 10, (-35 + 50) / 10) = (5.5, 1.5) -> (5, 1)
    assert torch.isclose(aligned[5, 1], torch.tensor(1.0), atol=1e-5)
    assert torch.isclose(aligned.sum(), torch.tensor(1.0), atol=1e-5)


def test_pillar_is_seen_exactly_by_the_cameras_whose_frustum_holds_it():
    from occnet.models.bev_encoders.spatial_cross_attention import select_camera_queries
    from test_model import camera_rig  # 8 cameras, 90 degree field of view, yaws below
    yaws = [0, 55, 90, 135, -55, -90, -135, 180]
    rig = torch.as_tensor(camera_rig())  # (8, 4, 4), image 64 x 32
    turned = rig @ torch.tensor([[-1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    lidar2img = torch.stack([rig, turned])  # sample 1's rig is turned by 180 degrees
    azimuths = [0, 30, 105, -170]
    pillars = torch.tensor([[[20 * math.cos(math.radians(a)), 20 * math.sin(math.radians(a)),
                              z] for z in (-3.0, -1.0, 1.0, 3.0)] for a in azimuths])
    ref_cam, visible = project_to_cameras(pillars, lidar2img, torch.tensor([[32, 64]] * 2),
                                          (32, 64))
    cams = select_camera_queries(ref_cam, visible)
    hit = torch.zeros(visible.shape[:3], dtype=torch.bool)  # (B, N, P) from the selection
    hit.scatter_(2, cams.index, cams.valid)
    assert torch.equal(cams.num_views, hit.sum(1).clamp(min=1).float())
    for sample, offset in ((0, 0), (1, 180)):
        for p, azimuth in enumerate(azimuths):
            # in the frustum: less than 45 degrees off the optical axis (|z| / 20 m < 0.5)
            expected = {n for n, yaw in enumerate(yaws)
                        if abs((azimuth - yaw - offset + 180) % 360 - 180) < 45}
            assert {n for n in range(8) if hit[sample, n, p]} == expected, (sample, azimuth)
    assert hit[0, :, 0].nonzero().flatten().tolist() == [0]
    assert hit[1, :, 0].nonzero().flatten().tolist() == [7]
