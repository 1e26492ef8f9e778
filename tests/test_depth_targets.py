"""Depth targets: a hand-placed LiDAR point lands in the right cell of the right camera with
its camera-frame depth, after the resize and BEV flip transforms; the nearest return of a
cell wins; returns behind the camera, off the image or out of range are no targets. The
semantic targets: the label of the voxel holding a cell's nearest return, after the same
transforms; free voxels and points off the grid are no targets."""
import numpy as np
import pytest

from occnet.datasets.transforms import RandomFlipBEV, ResizeMultiViewImages
from occnet.datasets.transforms.depth import (DepthMapsFromPoints, depth_maps, point_labels,
                                              semantic_maps)
from occnet.descriptions import get_description

# a front camera: camera x = -lidar y, camera y = -lidar z, camera z = lidar x;
# fx = fy = 100, centre (160, 90), images 320 x 180
K4 = np.array([[100.0, 0, 160, 0], [0, 100, 90, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
LIDAR2CAM = np.array([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
FRONT = K4 @ LIDAR2CAM
# a rear camera: camera x = lidar y, camera z = -lidar x
REAR = K4 @ np.array([[0.0, 1, 0, 0], [0, 0, -1, 0], [-1, 0, 0, 0], [0, 0, 0, 1]])


def frame(points):
    return dict(token='tok', imgs=[np.zeros((180, 320, 3), np.uint8)] * 2,
                img_shape=(180, 320), lidar2img=np.stack([FRONT, REAR]),
                points=np.asarray(points, dtype=np.float32), aug_seed=3)


def test_a_point_lands_in_its_cell_after_resize_and_flip():
    # (10, -1, 0.5): camera (1, -0.5, 10) -> pixel (170, 85), depth 10 m; after the 0.5
    # resize pixel (85, 42.5), so with stride 8 cell (row 5, col 10)
    points = [[10, -1, 0.5, 7], [20, -2, 1, 7],  # the second is behind the first: same pixel
              [-6, 0.6, 0.3, 7],  # seen by the rear camera: camera (0.6, -0.3, 6)
              [0.05, 0, 0, 7], [60, 0, 0, 7]]  # nearer than min_depth, beyond max_depth
    results = ResizeMultiViewImages(scale=0.5).transform(frame(points))
    results = RandomFlipBEV(flip_x_ratio=1.0, flip_y_ratio=1.0).transform(results)
    assert results['bev_flip'] == (True, True)
    assert np.allclose(results['points'][0, :3], [-10, 1, 0.5])  # the scene is mirrored
    maps = DepthMapsFromPoints(stride=8, min_depth=1.0, max_depth=45.0).transform(
        results)['depth_maps']
    assert maps.shape == (2, 12, 20) and maps.dtype == np.float32  # padded 96 x 160
    assert maps[0, 5, 10] == pytest.approx(10.0)  # the nearest return of the cell
    # rear: pixel (100 * 0.6 / 6 + 160, 100 * -0.3 / 6 + 90) * 0.5 = (85, 42.5)
    assert maps[1, 5, 10] == pytest.approx(6.0)
    assert np.count_nonzero(maps) == 2


def test_nearest_return_wins_whatever_the_order():
    points = np.array([[20, -2, 1], [10, -1, 0.5], [30, -3, 1.5]], dtype=np.float32)
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        maps = depth_maps(points[order], FRONT[None], (12, 20), 16)
        assert maps[0, 85 // 16, 170 // 16] == pytest.approx(10.0)
        assert np.count_nonzero(maps) == 1


def test_no_points_and_missing_points():
    assert not depth_maps(np.zeros((0, 3)), FRONT[None], (3, 4), 16).any()
    results = frame([[10, 0, 0]])
    del results['points']
    with pytest.raises(KeyError, match="frame tok has no 'points'.*LoadPoints"):
        DepthMapsFromPoints().transform(results)


def test_returns_in_the_padding_are_no_targets():
    """Image 320 x 150, padded to 320 x 160: a return at image row 155 is in the padding."""
    results = frame([[10, -1, -6.5, 7]])  # camera (1, 6.5, 10): pixel (170, 155)
    results['img_shape'] = (150, 320)
    maps = DepthMapsFromPoints(stride=8).transform(results)['depth_maps']
    assert maps.shape == (2, 20, 40) and not maps.any()
    results['img_shape'] = (160, 320)  # the same return inside a 160-row image
    assert DepthMapsFromPoints(stride=8).transform(results)['depth_maps'][0, 19, 21] == 10.0


FREE, IGNORE = 11, 255


def test_a_point_takes_its_voxels_label_after_resize_and_flip():
    """(10.2, -1.2, 0.7) sits in voxel (120, 97, 9) of the 0.5 m grid from (-50, -50, -4):
    camera (1.2, -0.7, 10.2), pixel (171.8, 83.1), after the 0.5 resize (85.9, 41.6), so
    cell (row 5, col 10) at stride 8, as in the depth test above."""
    labels = np.full((200, 200, 16), FREE, dtype=np.uint8)
    labels[120, 97, 9] = 9  # barrier, the nearest return of the front cell
    labels[140, 95, 10] = 0  # vehicle, behind it in the same cell: (20.4, -2.4, 1.4)
    points = [[10.2, -1.2, 0.7, 7], [20.4, -2.4, 1.4, 7],
              [-6.2, 0.7, 0.3, 7],  # rear camera, in a free voxel: no target
              [8.0, 60.0, 0.0, 7]]  # off the grid (and off every image)
    results = ResizeMultiViewImages(scale=0.5).transform(frame(points))
    results['voxel_semantics'] = labels
    results = RandomFlipBEV(flip_x_ratio=1.0, flip_y_ratio=1.0).transform(results)
    assert results['voxel_semantics'][79, 102, 9] == 9  # the grid is mirrored with the points
    results = DepthMapsFromPoints(stride=8, min_depth=1.0, max_depth=45.0,
                                  with_semantics=True).transform(results)
    sem = results['semantic_maps']
    assert sem.shape == (2, 12, 20) and sem.dtype == np.uint8
    assert sem[0, 5, 10] == 9 and results['depth_maps'][0, 5, 10] == pytest.approx(10.2)
    assert results['depth_maps'][1].any() and (sem[1] == IGNORE).all()  # free: ignored
    assert np.count_nonzero(sem != IGNORE) == 1


def test_the_nearest_returns_label_wins_and_off_grid_points_are_ignored():
    labels = np.full((200, 200, 16), FREE, dtype=np.uint8)
    labels[120, 97, 9], labels[140, 95, 10] = 9, 0
    desc = get_description('openscene')
    points = np.array([[20.4, -2.4, 1.4], [10.2, -1.2, 0.7]], dtype=np.float32)
    for order in ([0, 1], [1, 0]):
        sem = semantic_maps(points[order], labels, FRONT[None], (12, 20), 16, desc)
        assert sem[0, int(83.14 // 16), int(171.76 // 16)] == 9
        assert np.count_nonzero(sem != IGNORE) == 1
    alone = semantic_maps(points[:1], labels, FRONT[None], (12, 20), 16, desc)
    assert alone[0, 5, 10] == 0  # the vehicle behind, when nothing is in front of it
    # z = 4.2 m is above the grid's 4 m top: the return is seen but has no label
    high = np.array([[10.2, -1.2, 4.2]], dtype=np.float32)
    assert depth_maps(high, FRONT[None], (12, 20), 16).any()
    assert (semantic_maps(high, labels, FRONT[None], (12, 20), 16, desc) == IGNORE).all()


def test_semantic_targets_need_the_occupancy_label():
    with pytest.raises(KeyError, match="frame tok has no 'voxel_semantics'.*LoadOccupancyLabel"):
        DepthMapsFromPoints(with_semantics=True).transform(frame([[10, 0, 0]]))


def test_a_return_on_a_voxel_face_takes_the_label_of_the_surface_behind_it():
    """The road's top at z = -2 m is the face between voxel 3 (road) and voxel 4 (free):
    the return's label is read a quarter voxel on along its ray, inside the road. A return
    at the face of a free voxel with nothing behind it keeps no label."""
    labels = np.full((200, 200, 16), FREE, dtype=np.uint8)
    labels[:, :, 3] = 10  # background (road) below z = -2
    desc = get_description('openscene')
    road = np.array([[10.2, -1.2, -2.0]], dtype=np.float32)  # voxel (120, 97, 4): free
    assert (point_labels(road, labels, desc) == [10]).all()
    # from a ray origin below the road the quarter voxel goes up, into the free voxel
    # above; the point's own voxel (4) is free too
    assert (point_labels(road, labels, desc, origin=(0, 0, -3.0)) == [IGNORE]).all()
    # a return inside a labelled voxel keeps it however the ray runs
    inside = np.array([[10.2, -1.2, -2.3]], dtype=np.float32)
    assert (point_labels(inside, labels, desc, origin=(0, 0, -3.0)) == [10]).all()
