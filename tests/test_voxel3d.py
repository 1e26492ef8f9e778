"""3D chase-camera renders: pixels, depths, face shading and errors worked out by hand, and the
GIF / MP4 writer."""
import cv2
import numpy as np
import pytest
from PIL import Image

from occnet.descriptions import OPENSCENE
from occnet.evaluation.ray_iou import march_rays
from occnet.visualization.animation import write_animation
from occnet.visualization.voxel3d import (FACE_SHADE, ChaseCamera, box_entry, error_grid,
                                          render_chase_gt_vs_pred, render_voxels)

CLASS_PALETTE, FREE_INDEX, IGNORE_INDEX = (OPENSCENE.palette, OPENSCENE.free_index,
                                            OPENSCENE.ignore_index)
GRID_SHAPE = OPENSCENE.grid_shape

SMALL_RANGE = (-5.0, -5.0, -2.0, 5.0, 5.0, 2.0)  # 10 x 10 x 4 voxels of 1 m


def test_camera_puts_its_target_at_the_image_centre_and_left_on_the_left():
    camera = ChaseCamera(position=(-10.0, 0.0, 5.0), target=(10.0, 0.0, -5.0), size=(200, 100))
    uv, depth = camera.project(np.array([[10.0, 0.0, -5.0], [10.0, 3.0, -5.0],
                                         [-20.0, 0.0, 5.0]]))
    np.testing.assert_allclose(uv[0], (100.0, 50.0), atol=1e-9)
    assert uv[1, 0] < 100.0  # +y (left of the ego) is drawn left
    assert depth[0] == pytest.approx(np.hypot(20.0, 10.0)) and depth[2] < 0
    rays = camera.pixel_rays().reshape(100, 200, 3)
    # pixel centres (99.5, 49.5) and (100.5, 50.5) straddle the target's direction
    mean = rays[49:51, 99:101].reshape(-1, 3).mean(0)
    np.testing.assert_allclose(mean / np.linalg.norm(mean), np.array([2.0, 0, -1]) / np.sqrt(5),
                               atol=1e-9)


def test_box_entry_by_hand():
    dirs = np.array([[1.0, 0, 0], [0, 0, 1.0], [-1.0, 0, 0]])
    t, axis = box_entry((-20.0, 0.5, 0.5), dirs, np.array([-5.0, -5, -2]), np.array([5.0, 5, 2]))
    assert t[0] == pytest.approx(15.0) and axis[0] == 0
    assert np.isinf(t[1]) and np.isinf(t[2])  # up and backwards miss the box
    t, axis = box_entry((0.0, 0.0, 0.0), dirs[:1], np.array([-5.0, -5, -2]),
                        np.array([5.0, 5, 2]))
    assert t[0] == 0.0 and axis[0] == -1  # already inside


def test_march_reports_the_face_the_hit_voxel_was_entered_through():
    grid = np.full((10, 10, 4), FREE_INDEX, dtype=np.uint8)
    grid[7, 5, 2] = 0  # x in [2, 3), y in [0, 1), z in [0, 1)
    grid[5, 5, 0] = 10  # below the start
    starts = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [2.5, 0.5, 0.5]])
    dirs = np.array([[1.0, 0, 0], [0, 0, -1.0], [1.0, 0, 0]])
    cls, depth, axis = march_rays(grid, starts, dirs, pc_range=SMALL_RANGE, voxel_size=1.0)
    assert cls.tolist() == [0, 10, 0]
    np.testing.assert_allclose(depth, [1.5, 1.5, 0.0])
    assert axis.tolist() == [0, 2, -1]  # the last one starts inside its hit voxel


def test_a_wall_seen_head_on_has_the_class_colour_at_the_known_depth():
    grid = np.full((10, 10, 4), FREE_INDEX, dtype=np.uint8)
    grid[7] = 7  # pedestrian wall, x in [2, 3) m, facing the camera with its -x side
    grid[2, 0, 0] = IGNORE_INDEX  # ignored voxels are not drawn
    camera = ChaseCamera(position=(-20.0, 0.3, 0.3), target=(10.0, 0.3, 0.3), fov_deg=40,
                         size=(64, 48))
    image, depth = render_voxels(grid, camera, pc_range=SMALL_RANGE, voxel_size=1.0,
                                 draw_ego=False)
    centre = (24, 32)
    assert depth[centre] == pytest.approx(22.0, abs=0.05)  # from x = -20 to the face at x = 2
    expected = np.array(CLASS_PALETTE[7]) * FACE_SHADE[0]  # an x face, no edge, no fog at 22 m
    np.testing.assert_allclose(image[centre], np.rint(expected), atol=1)
    assert np.isinf(depth[0, 0])  # the wall spans 10 x 4 m: the corner sees sky
    assert image[0, 0].tolist() != image[centre].tolist()


def test_error_grid_by_hand():
    gt = np.full((2, 2, 1), FREE_INDEX, dtype=np.uint8)
    pred = gt.copy()
    gt[0, 0, 0], pred[0, 0, 0] = 0, 0  # right
    gt[0, 1, 0], pred[0, 1, 0] = 0, 7  # wrong class
    gt[1, 0, 0] = 9  # missed
    pred[1, 1, 0] = 8  # false
    assert error_grid(gt, pred)[..., 0].tolist() == [[0, 1], [2, 3]]
    gt[1, 1, 0] = IGNORE_INDEX  # ignored ground truth is free here
    assert error_grid(gt, pred)[1, 1, 0] == 3


def test_chase_render_of_a_full_grid_shows_the_ego_box():
    gt = np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)
    gt[:, :, 3] = 10  # ground
    gt[130:140, 95:105, 4:8] = 0  # a vehicle block 15 m ahead
    pred = gt.copy()
    pred[130:140, 95:105, 4:8] = 7
    camera = ChaseCamera(size=(160, 100))
    image, depth = render_voxels(gt, camera)
    uv, _ = camera.project(np.array([[0.0, 0.0, -1.0], [17.5, 0.0, -1.0]]))
    ego_pixel, block_pixel = np.rint(uv).astype(int)
    assert image[ego_pixel[1], ego_pixel[0]].max() < 100  # the dark ego marker
    assert np.argmax(image[block_pixel[1], block_pixel[0]]) == 2  # the blue vehicle
    panels = render_chase_gt_vs_pred(gt, pred, 'title', camera)
    assert panels.shape[1] == 2 * 20 + 3 * 160 + 2 * 16


def test_animations_have_every_frame(tmp_path):
    frames = [np.full((30, 41, 3), 60 * i, dtype=np.uint8) for i in range(4)]
    gif = write_animation(frames, tmp_path / 'a' / 'scene.gif', fps=5)
    with Image.open(gif) as image:
        assert image.n_frames == 4 and image.info['duration'] == 200
    mp4 = write_animation(frames, tmp_path / 'scene.mp4', fps=5)
    capture = cv2.VideoCapture(str(mp4))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    ok, first = capture.read()
    assert ok and first.shape == (30, 42, 3)  # padded to even sizes for the encoder
    with pytest.raises(ValueError, match='must end in'):
        write_animation(frames, tmp_path / 'scene.avi')


def test_object_agreement_leaves_the_ground_out():
    from occnet.visualization.topdown import object_agreement
    gt = np.array([10, 10, 10, 0, 7, FREE_INDEX, IGNORE_INDEX])
    pred = np.array([10, 10, FREE_INDEX, 0, 0, 7, IGNORE_INDEX])
    # object cells: 3 (vehicle both), 4 (pedestrian vs vehicle), 5 (false pedestrian)
    assert object_agreement(gt, pred) == pytest.approx(100.0 / 3)
    assert object_agreement(gt[:3], pred[:3]) == 100.0  # ground only
