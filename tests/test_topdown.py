"""Top-down occupancy renders: orientation, colours, height shading, error map and the PNG."""
import cv2
import numpy as np
import pytest

from occnet.descriptions import OPENSCENE
from occnet.visualization import (column_top_classes, save_gt_vs_pred, topdown_class_map,
                                  topdown_error_map)
from occnet.visualization.topdown import ERROR_KINDS, FREE_RGB

CLASS_PALETTE, FREE_INDEX, IGNORE_INDEX = (OPENSCENE.palette, OPENSCENE.free_index,
                                            OPENSCENE.ignore_index)
GRID_SHAPE = OPENSCENE.grid_shape

VEHICLE, PEDESTRIAN, BARRIER, BACKGROUND = 0, 7, 9, 10
X, Y, Z = GRID_SHAPE


def empty_grid():
    return np.full(GRID_SHAPE, FREE_INDEX, dtype=np.uint8)


def test_voxel_lands_at_expected_pixel_with_class_colour():
    grid = empty_grid()
    grid[150, 30, 5] = VEHICLE  # 25 m ahead, 35 m to the right
    image = topdown_class_map(grid, shade=False)
    assert image.shape == (X, Y, 3) and image.dtype == np.uint8
    row, col = X - 1 - 150, Y - 1 - 30  # (49, 169): upper half, right half
    assert tuple(image[row, col]) == CLASS_PALETTE[VEHICLE]
    assert tuple(image[0, 0]) == FREE_RGB
    assert (image != FREE_RGB).any(axis=2).sum() == 1  # nothing else drawn

    scaled = topdown_class_map(grid, scale=3, shade=False)
    assert scaled.shape == (3 * X, 3 * Y, 3)
    assert (scaled[3 * row:3 * row + 3, 3 * col:3 * col + 3] == CLASS_PALETTE[VEHICLE]).all()


def test_highest_voxel_wins_and_height_brightens():
    grid = empty_grid()
    grid[10, 10, 2] = BACKGROUND
    grid[10, 10, 9] = PEDESTRIAN  # above the background voxel: the column shows pedestrian
    grid[20, 20, 12] = IGNORE_INDEX  # ignored voxels are not drawn
    top_class, top_z = column_top_classes(grid)
    assert top_class[10, 10] == PEDESTRIAN and top_z[10, 10] == 9
    assert top_class[20, 20] == FREE_INDEX and top_z[20, 20] == -1

    grid[50, 50, 0] = BARRIER
    grid[60, 60, Z - 1] = BARRIER
    image = topdown_class_map(grid).astype(int)
    low, high = image[X - 1 - 50, Y - 1 - 50], image[X - 1 - 60, Y - 1 - 60]
    assert high.sum() > low.sum()
    assert low.argmax() == high.argmax() == 0  # still reads as the barrier's red


def test_unknown_class_is_an_error():
    grid = empty_grid()
    grid[0, 0, 0] = 42
    with pytest.raises(ValueError, match='class 42'):
        topdown_class_map(grid)


def test_error_map_colours_each_kind():
    gt, pred = empty_grid(), empty_grid()
    gt[1, 1, 3] = pred[1, 1, 3] = VEHICLE  # correct
    gt[2, 2, 3], pred[2, 2, 3] = VEHICLE, PEDESTRIAN  # wrong class
    gt[3, 3, 3] = BARRIER  # missed occupied
    pred[4, 4, 3] = BACKGROUND  # false occupied
    image, counts = topdown_error_map(gt, pred)
    colours = dict(ERROR_KINDS)
    for (x, y), kind in zip([(1, 1), (2, 2), (3, 3), (4, 4)], colours):
        assert tuple(image[X - 1 - x, Y - 1 - y]) == colours[kind]
        assert counts[kind] == 1
    assert tuple(image[100, 100]) == FREE_RGB


def test_gt_vs_pred_png_is_written(tmp_path):
    gt = empty_grid()
    gt[:, :, 3] = BACKGROUND
    gt[120:130, 90:95, 4:7] = VEHICLE
    pred = gt.copy()
    pred[120:130, 90:95, 4:7] = PEDESTRIAN
    path = tmp_path / 'vis' / 'frame.png'
    image = save_gt_vs_pred(gt, pred, str(path), title='frame abc', scale=2)
    written = cv2.imread(str(path))
    assert written is not None and written.shape == image.shape
    assert written.shape[1] > 3 * 2 * Y and written.shape[0] > 2 * X
    np.testing.assert_array_equal(written[..., ::-1], image)  # RGB in memory, BGR on disk
    with pytest.raises(ValueError, match='shape'):
        save_gt_vs_pred(gt, pred[:, :, :8], str(path))
