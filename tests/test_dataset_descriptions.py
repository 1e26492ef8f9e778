"""occnet.datasets under a dataset description other than OpenScene's: label loading, image
loading, class statistics and frame checks follow the description's grid, labels and cameras
(Occ3D-nuScenes, or a tiny hand-made description)."""
import re

import cv2
import numpy as np
import pytest

from occnet.datasets.frame_checks import frame_problems, has_file_paths
from occnet.datasets.infos import DataError
from occnet.datasets.labels import load_flow, load_occupancy, load_visible_mask
from occnet.datasets.openscene_dataset import OpenSceneOccDataset
from occnet.datasets.stats import (class_table, format_group_table, frame_class_counts,
                                   group_stats, stat_class_names)
from occnet.datasets.transforms.loading import LoadMultiViewImages, LoadOccupancyLabel
from occnet.descriptions import OCC3D_NUSCENES, OPENSCENE, OccDescription, get_description

OCC3D_VOXELS = 200 * 200 * 16
# a 4 x 3 x 2 grid with labels car = 0, road = 1, free = 2 and two cameras
TINY = OccDescription(
    name='tiny', class_names=('car', 'road'), free_index=2, ignore_index=255, evaluated=(0, 1),
    foreground=(0,), palette=((255, 0, 0), (90, 90, 90), (255, 255, 255)),
    point_cloud_range=(0.0, 0.0, 0.0, 4.0, 3.0, 2.0), voxel_size=1.0, grid_shape=(4, 3, 2),
    grid_frame='ego', camera_names=('CAM_A', 'CAM_B'), image_size=(32, 16))


def index1d(x, y, z, grid_shape):
    return z * grid_shape[0] * grid_shape[1] + y * grid_shape[0] + x


@pytest.fixture
def occ3d_label(tmp_path):
    """Sparse rows with every Occ3D label 0..17: label c at voxel (c, 2c, c % 16)."""
    rows = [[index1d(c, 2 * c, c % 16, OCC3D_NUSCENES.grid_shape), c] for c in range(18)]
    path = tmp_path / 'occ3d_occ.npy'
    np.save(path, np.array(rows, dtype=np.int64))
    return path


def test_occ3d_labels_up_to_17_load_with_free_17(occ3d_label):
    dense = load_occupancy(str(occ3d_label), 'tok', dataset='occ3d_nuscenes')
    assert dense.shape == (200, 200, 16) and dense.dtype == np.uint8
    assert dense[16, 32, 0] == 16 and dense[10, 20, 10] == 10
    assert (dense == 17).sum() == OCC3D_VOXELS - 17  # unlisted voxels are Occ3D's free
    # OpenScene's labels stop at 11: the same file is refused there
    with pytest.raises(DataError, match=r'classes outside \[0, 12\), e.g. 12'):
        load_occupancy(str(occ3d_label), 'tok')


def test_occ3d_label_18_is_refused_naming_the_file(occ3d_label, tmp_path):
    rows = np.load(occ3d_label)
    rows[5, 1] = 18
    path = tmp_path / 'bad_occ.npy'
    np.save(path, rows)
    with pytest.raises(DataError, match=re.escape(f'{path} (frame tok) holds classes outside '
                                                  '[0, 18), e.g. 18')):
        load_occupancy(str(path), 'tok', dataset=OCC3D_NUSCENES)


def test_labels_follow_a_custom_grid(tmp_path):
    grid = TINY.grid_shape
    np.save(tmp_path / 'occ.npy', np.array([[index1d(3, 2, 1, grid), 0],
                                            [index1d(1, 0, 0, grid), 1]], dtype=np.int64))
    np.save(tmp_path / 'flow.npy', np.array([[1.5, -2.0], [0.0, 0.5]], dtype=np.float32))
    np.save(tmp_path / 'invalid.npy', np.array([index1d(0, 1, 1, grid)], dtype=np.int64))
    dense = load_occupancy(str(tmp_path / 'occ.npy'), 'tok', dataset=TINY.metainfo())
    expected = np.full(grid, 2, dtype=np.uint8)
    expected[3, 2, 1], expected[1, 0, 0] = 0, 1
    np.testing.assert_array_equal(dense, expected)
    rows = load_occupancy(str(tmp_path / 'occ.npy'), 'tok', dense=False, dataset=TINY)
    flow = load_flow(str(tmp_path / 'flow.npy'), 'tok', rows, dataset=TINY)
    assert flow.shape == (4, 3, 2, 2)
    np.testing.assert_array_equal(flow[3, 2, 1], [1.5, -2.0])
    assert np.abs(flow).sum() == 4.0
    visible = load_visible_mask(str(tmp_path / 'invalid.npy'), 'tok', dataset=TINY)
    assert visible.shape == grid and not visible[0, 1, 1] and visible.sum() == 23
    np.save(tmp_path / 'outside.npy', np.array([[24, 0]], dtype=np.int64))  # 4 * 3 * 2 voxels
    with pytest.raises(DataError, match=r'outside.npy.*voxel indices outside \[0, 24\)'):
        load_occupancy(str(tmp_path / 'outside.npy'), 'tok', dataset=TINY)


def test_load_occupancy_label_transform_uses_the_dataset(tmp_path, occ3d_label):
    np.save(tmp_path / 'invalid.npy', np.array([0, OCC3D_VOXELS - 1], dtype=np.int64))
    results = LoadOccupancyLabel(dataset='occ3d_nuscenes').transform(dict(
        token='tok', occ_gt_final_path=str(occ3d_label),
        occ_invalid_path=str(tmp_path / 'invalid.npy')))
    semantics = results['voxel_semantics']
    assert semantics.shape == (200, 200, 16) and semantics[0, 0, 0] == 0
    assert semantics[199, 199, 15] == 17 and semantics[17, 34, 1] == 17
    assert results['mask_camera'].sum() == OCC3D_VOXELS - 2
    assert not results['mask_camera'][199, 199, 15]


def grey_jpegs(folder, count):
    """`count` 16 x 8 JPEGs of grey levels 20, 50, 80, ... (one per camera, in order)."""
    paths = []
    for n in range(count):
        path = str(folder / f'cam{n}.jpg')
        cv2.imwrite(path, np.full((8, 16, 3), 20 + 30 * n, dtype=np.uint8))
        paths.append(path)
    return paths


def calibration(count):
    return dict(sensor2lidar_rotation=np.stack([np.eye(3)] * count),
                sensor2lidar_translation=np.stack([[float(n), 0.0, 0.0] for n in range(count)]),
                cam_intrinsic=np.stack([np.eye(3)] * count))


def test_load_images_follows_the_nuscenes_camera_order(tmp_path):
    load = LoadMultiViewImages(dataset='occ3d_nuscenes')
    assert load.camera_names == ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK',
                                 'CAM_BACK_LEFT', 'CAM_BACK_RIGHT')
    paths = grey_jpegs(tmp_path, 6)
    out = load.transform(dict(token='tok', img_paths=paths, **calibration(6)))
    assert len(out['imgs']) == 6 and out['lidar2img'].shape == (6, 4, 4)
    np.testing.assert_allclose([img.mean() for img in out['imgs']],
                               [20, 50, 80, 110, 140, 170], atol=1.5)
    # camera n sits n metres along lidar x: calibration rows stay in camera order
    np.testing.assert_allclose(out['lidar2img'][:, 0, 3], [0, -1, -2, -3, -4, -5])

    (tmp_path / 'cam2.jpg').unlink()  # the third nuScenes camera is CAM_FRONT_LEFT
    with pytest.raises(DataError, match=r'cam2.jpg for frame token tok \(CAM_FRONT_LEFT\)'):
        load.transform(dict(token='tok', img_paths=paths, **calibration(6)))
    with pytest.raises(DataError, match=r'cam2.jpg for frame token tok \(CAM_L1\)'):
        LoadMultiViewImages().transform(dict(token='tok', img_paths=paths + paths[:2],
                                             **calibration(8)))


def test_load_images_refuses_a_frame_of_another_camera_count(tmp_path):
    paths = grey_jpegs(tmp_path, 6)
    with pytest.raises(DataError, match=r'6 image paths, the dataset has 8 cameras'):
        LoadMultiViewImages().transform(dict(token='tok', img_paths=paths, **calibration(6)))


def test_occ3d_stats_count_18_labels(tmp_path, occ3d_label):
    frame = dict(token='tok', log_name='log', scene_token='s', occ_gt_final_path=str(occ3d_label))
    counts, masked = frame_class_counts(str(tmp_path), frame, dataset='occ3d_nuscenes')
    assert masked is None and counts.shape == (18,)
    assert counts[:17].tolist() == [1] * 17 and counts[17] == OCC3D_VOXELS - 17
    names = stat_class_names('occ3d_nuscenes')
    assert len(names) == 18 and names[16] == 'vegetation' and names[17] == 'free'
    stats = group_stats([frame], str(tmp_path), dataset=OCC3D_NUSCENES)
    assert list(stats['voxel_counts']) == list(names)
    assert stats['voxel_counts']['free'] == OCC3D_VOXELS - 17
    assert stats['voxel_counts']['others'] == 1 and len(stats['class_weights_list']) == 18
    table = format_group_table('occ3d', stats).splitlines()
    assert len(table) == 3 + 18 and table[-1].startswith('free ')
    assert table[3 + 5].startswith('construction_vehicle ')  # the long name keeps its column
    assert len({line.index('.') for line in table[3:]}) == 1  # frequency columns aligned
    with pytest.raises(ValueError, match='counts of shape \\(18,\\) for the 12 labels'):
        class_table(counts)  # counted under Occ3D, named under OpenScene


def frame_with_cameras(names):
    cam = dict(data_path='x.jpg', sensor2lidar_rotation=np.eye(3),
               sensor2lidar_translation=np.zeros(3), cam_intrinsic=np.eye(3))
    return dict(token='tok', scene_token='s', timestamp=1, can_bus=np.zeros(18),
                lidar2global=np.eye(4), lidar2ego=np.eye(4),
                cams={name: dict(cam) for name in names})


def test_frame_checks_expect_the_dataset_cameras():
    frame = frame_with_cameras(OCC3D_NUSCENES.camera_names)
    assert frame_problems(frame, dataset='occ3d_nuscenes') == []
    assert frame_problems(frame) == [f'cams lacks {list(OPENSCENE.camera_names)}']
    frame['cams']['CAM_BACK']['cam_intrinsic'] = np.eye(2)
    assert frame_problems(frame, dataset=OCC3D_NUSCENES.metainfo()) == [
        "CAM_BACK calibration shapes {'sensor2lidar_rotation': (3, 3), "
        "'sensor2lidar_translation': (3,), 'cam_intrinsic': (2, 2)}"]
    frame['cams']['CAM_BACK_LEFT']['data_path'] = None
    assert has_file_paths(frame)  # OpenScene's cameras: none present, nothing to name
    assert not has_file_paths(frame, dataset='occ3d_nuscenes')


def test_openscene_dataset_metainfo_is_its_description():
    meta = OpenSceneOccDataset.METAINFO
    assert get_description(meta) == OPENSCENE
    assert meta['classes'] == ('vehicle', 'czone_sign', 'bicycle', 'generic_object',
                               'pedestrian', 'traffic_cone', 'barrier', 'background')
    assert meta['num_classes'] == 12 and meta['camera_names'][0] == 'CAM_F0'
