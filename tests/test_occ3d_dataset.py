"""Occ3D-nuScenes through the dataset and pipeline: grid (ego) points project to the pixel
worked by hand, labels and camera mask arrive, the previous frame and SparseOcc's ray
origins are expressed in the ego frame."""
import cv2
import numpy as np

from occnet.datasets import Occ3DNuScenesDataset
from occnet.descriptions import OCC3D_NUSCENES as OCC3D
from test_occ3d_eval import V3, scene

PIPELINE = [dict(type='LoadMultiViewImages', dataset='occ3d_nuscenes'),
            dict(type='LoadOcc3DLabel'), dict(type='PackOccInputs')]


def dataset_on_disk(tmp_path, test_mode, with_ray_origins=True):
    infos, gt = scene(tmp_path)  # 2 frames, 2 m apart along ego x, 0.5 s apart
    for token in ('tok0', 'tok1'):
        for cam in OCC3D.camera_names:
            path = tmp_path / 'samples' / cam / f'{token}.jpg'
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((80, 100, 3), 128, dtype=np.uint8))
    return Occ3DNuScenesDataset(ann_file=infos, data_root=str(tmp_path), pipeline=PIPELINE,
                                test_mode=test_mode, with_ray_origins=with_ray_origins), gt


def test_occ3d_sample_in_the_ego_frame(tmp_path):
    dataset, gt = dataset_on_disk(tmp_path, test_mode=True)
    assert len(dataset) == 2 and dataset.metainfo['free_index'] == 17
    sample = dataset[1]['data_samples']
    # the hand-worked point of tests/test_occ3d.py: ego (-1, 10, 3) -> pixel (30, 30), 10 m
    lidar2img = np.asarray(sample['lidar2img'])[-1]  # (6, 4, 4), last queue slot
    assert lidar2img.shape == (6, 4, 4)
    projected = lidar2img[0] @ np.array([-1.0, 10.0, 3.0, 1.0])
    assert np.allclose(projected[:2] / projected[2], [30.0, 30.0], atol=1e-4)
    assert np.array_equal(np.asarray(sample['voxel_semantics']), gt)
    mask = np.asarray(sample['mask_camera'])
    assert mask.dtype == bool and not mask[V3] and mask.sum() == mask.size - 1
    # the previous frame's ego origin lies 2 m behind: current grid -> previous grid is +2 m
    assert np.allclose(np.asarray(sample['cur2prev'])[-1][:3, 3], [2.0, 0.0, 0.0])
    # SparseOcc's origins: both frames' lidar (1 m ahead of, 2 m above the ego origin), in
    # the current ego frame, in time order
    assert np.allclose(sample['ray_origins'], [[-1.0, 0.0, 2.0], [1.0, 0.0, 2.0]], atol=1e-6)


def test_points_move_into_the_grid_frame(tmp_path):
    """With `lidar_to_grid` (Occ3D: lidar -> ego, here +90 degrees about z and (1, 0, 2)),
    a return at lidar (10, 2, 1) lands at ego (-1, 10, 3), the point tests/test_occ3d.py
    projects by hand; without it the points stay in the lidar frame."""
    from pathlib import Path

    from occnet.datasets.synthetic.writer import write_pcd
    from occnet.datasets.transforms import LoadPoints
    path = Path(tmp_path) / 'sweep.pcd'
    write_pcd(path, np.array([[10.0, 2.0, 1.0, 0, 0, 0]], dtype=np.float32))
    to_grid = np.eye(4)
    to_grid[:3, :3] = [[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]
    to_grid[:3, 3] = [1.0, 0.0, 2.0]
    moved = LoadPoints()(dict(token='t', lidar_path=str(path), lidar_to_grid=to_grid))
    assert np.allclose(moved['points'], [[-1.0, 10.0, 3.0]])
    plain = LoadPoints()(dict(token='t', lidar_path=str(path)))
    assert np.allclose(plain['points'], [[10.0, 2.0, 1.0]])
