"""Synthetic Occ3D-nuScenes writer: the files on disk as the Occ3D readers and dataset read them,
labels in the ego grid placed by hand, the masks, the class mapping, `.pcd.bin` reading,
determinism, and the OpenScene writer's output pinned while the pipeline is shared."""
import hashlib
import os
import pathlib
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest

from occnet.datasets import Occ3DNuScenesDataset
from occnet.datasets.infos import DataError, MissingFileError
from occnet.datasets.occ3d import grid2img_matrix, load_occ3d_infos, load_occ3d_label
from occnet.datasets.pointcloud import load_points, point_fields
from occnet.datasets.synthetic import generate_dataset, generate_occ3d_dataset
from occnet.datasets.synthetic.lidar import LidarScanner
from occnet.datasets.synthetic.occ3d_labels import (lidar_mask, object_classes,
                                                    occ3d_semantics)
from occnet.datasets.synthetic.occ3d_writer import occ3d_log_world, render_frame
from occnet.datasets.synthetic.parts import MATERIAL, concat_parts, make_parts
from occnet.datasets.synthetic.render import RigRenderer
from occnet.datasets.synthetic.rig import lidar2ego_matrix
from occnet.datasets.synthetic.voxelize import voxelize_frame
from occnet.descriptions import OCC3D_NUSCENES as OCC3D
from occnet.geometry import pose_matrix, voxel_centers
from script_loader import load_script
from test_synthetic_world import layout_of

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAMS, GRID_SHAPE, FREE = OCC3D.camera_names, OCC3D.grid_shape, OCC3D.free_index
CLASS = {name: i for i, name in enumerate(OCC3D.class_names)}
NUM_LOGS, FRAMES, IMAGE_SIZE, SEED = 2, 2, (160, 90), 1  # seed 1: trucks in log 0
# the ego 100 m along a road that runs along global x; ego frame = global frame turned by 0.3
EGO2GLOBAL = pose_matrix([100.0, -2.0, 0.0], [np.cos(0.15), 0.0, 0.0, np.sin(0.15)])
# OpenScene set of tests/test_synthetic_occ3d.py::test_openscene_output_is_unchanged, made
# before the pipeline took a dataset description: sha256 over its .npy and .pcd files
OPENSCENE_DIGEST = 'daef0358a67c0931caedef2e9293d2c7aefb50d238cdbddb556ef823035dc25d'


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    """2 logs x 2 frames through the command line, 2 workers, the last log held out."""
    out_dir = tmp_path_factory.mktemp('occ3d')
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, 'tools', 'create_synthetic_occ3d.py'),
         '--out-dir', str(out_dir), '--num-logs', str(NUM_LOGS), '--frames-per-log',
         str(FRAMES), '--image-size', *map(str, IMAGE_SIZE), '--seed', str(SEED),
         '--val-logs', '1', '--workers', '2'], capture_output=True, text=True, check=True)
    assert '2 logs, 2 scenes, 4 frames (2 train, 2 val)' in result.stdout
    return out_dir


def read_infos(root, split):
    with open(root / f'occ_infos_temporal_{split}.pkl', 'rb') as f:
        return pickle.load(f)


def test_layout_dtypes_and_infos(root):
    train, val = read_infos(root, 'train'), read_infos(root, 'val')
    assert train['metadata'] == {'version': 'v1.0-synthetic'} == val['metadata']
    assert {i['scene_name'] for i in train['infos']} == {'scene-0000-00'}
    assert {i['scene_name'] for i in val['infos']} == {'scene-0001-00'}  # whole logs
    for infos in (train['infos'], val['infos']):
        first, second = infos
        assert first['prev'] == '' and first['next'] == second['token']
        assert second['prev'] == first['token'] and second['next'] == ''
        assert second['timestamp'] - first['timestamp'] == 500_000
        for info in infos:
            token = info['token']
            assert info['occ_gt_path'] == f"gts/{info['scene_name']}/{token}/labels.npz"
            assert info['lidar_path'] == f'samples/LIDAR_TOP/{token}.pcd.bin'
            assert info['can_bus'].shape == (18,) and len(info['ego2global_rotation']) == 4
            assert list(info['cams']) == list(CAMS)
            for cam in CAMS:
                entry = info['cams'][cam]
                assert entry['data_path'] == f'samples/{cam}/{token}.jpg'
                assert entry['sensor2lidar_rotation'].shape == (3, 3)
                assert entry['cam_intrinsic'].shape == (3, 3)
                image = cv2.imread(str(root / entry['data_path']))
                assert image.shape == (IMAGE_SIZE[1], IMAGE_SIZE[0], 3)
            assert (root / info['lidar_path']).stat().st_size % 20 == 0
            with np.load(root / info['occ_gt_path']) as npz:
                assert sorted(npz.files) == ['mask_camera', 'mask_lidar', 'semantics']
                for key in npz.files:
                    assert npz[key].dtype == np.uint8 and npz[key].shape == GRID_SHAPE
                assert npz['semantics'].max() <= FREE
                assert set(np.unique(npz['mask_camera'])) == {0, 1}
                assert 0 < npz['mask_lidar'].mean() < 0.5


def test_infos_read_back_through_the_reader_and_the_dataset(root):
    infos = str(root / 'occ_infos_temporal_train.pkl')
    frames = load_occ3d_infos(infos, CAMS)
    assert [f['scene_name'] for f in frames] == ['scene-0000-00'] * 2
    assert frames[1]['sample_prev'] == frames[0]['token']
    # the lidar sits 1.84 m above the ego origin, turned -90 degrees (x to the ego's right)
    assert np.allclose(frames[0]['lidar2ego'][:3, 3], [0.94, 0.0, 1.84])
    assert np.allclose(frames[0]['lidar2ego'][:3, 0], [0.0, -1.0, 0.0])
    # the camera chain of the BEVDet flavour agrees with sensor2lidar
    raw = read_infos(root, 'train')['infos'][0]['cams']['CAM_BACK']
    sensor2ego = pose_matrix(raw['sensor2ego_translation'], raw['sensor2ego_rotation'])
    sensor2lidar = np.linalg.inv(frames[0]['lidar2ego']) @ sensor2ego
    assert np.allclose(sensor2lidar[:3, :3], raw['sensor2lidar_rotation'], atol=1e-9)
    assert np.allclose(sensor2lidar[:3, 3], raw['sensor2lidar_translation'], atol=1e-9)

    dataset = Occ3DNuScenesDataset(
        ann_file=infos, data_root=str(root), test_mode=True,
        pipeline=[dict(type='LoadMultiViewImages', dataset='occ3d_nuscenes'),
                  dict(type='LoadOcc3DLabel'), dict(type='PackOccInputs')])
    assert len(dataset) == 2
    sample = dataset[1]['data_samples']
    semantics, _, mask_camera = load_occ3d_label(str(root / frames[1]['occ_gt_path']), OCC3D)
    assert np.array_equal(np.asarray(sample['voxel_semantics']), semantics)
    assert np.array_equal(np.asarray(sample['mask_camera']), mask_camera)
    lidar2img = np.asarray(sample['lidar2img'])[-1]  # (6, 4, 4) for ego (grid) points
    for cam, name in enumerate(CAMS):
        assert np.allclose(lidar2img[cam], grid2img_matrix(frames[1], name), atol=1e-6)


@pytest.fixture(scope='module')
def replayed(root):
    """Frame 1 of log 0 rendered again in-process from the written calibration (the infos'
    cams) and the log's world: the labels, pixel owners and voxel owners."""
    frame = load_occ3d_infos(str(root / 'occ_infos_temporal_train.pkl'), CAMS)[1]
    world = occ3d_log_world(SEED, 0, FRAMES)
    renderer = RigRenderer(frame['cams'], IMAGE_SIZE, OCC3D,
                           grid2lidar=np.linalg.inv(frame['lidar2ego']), ground_z=0.0)
    classes = object_classes(world.objects.category, world.objects.size)
    out = render_frame(world, renderer, LidarScanner(), 1, classes)
    return frame, world, classes, out


def test_replayed_frame_matches_the_files(root, replayed):
    frame, _, _, out = replayed
    semantics, mask_lidar, mask_camera = load_occ3d_label(str(root / frame['occ_gt_path']),
                                                          OCC3D)
    assert np.array_equal(out['semantics'], semantics)
    assert np.array_equal(out['mask_camera'].astype(bool), mask_camera)
    assert np.array_equal(out['mask_lidar'].astype(bool), mask_lidar)


def project(frame, name, points):
    """Pixels (M, 2) int (col, row) of ego points (M, 3) in camera `name` and whether they
    land inside its image in front of it (M,)."""
    projected = np.c_[points, np.ones(len(points))] @ grid2img_matrix(frame, name).T
    depth = projected[:, 2]
    pixel = np.round(projected[:, :2] / np.maximum(depth, 1e-6)[:, None]).astype(int)
    inside = (depth > 0.1) & np.all((pixel >= 0) & (pixel < IMAGE_SIZE), axis=1)
    return pixel, inside


def test_visible_object_voxels_project_onto_their_object(replayed):
    """Every camera-visible object voxel's centre (or its top face's centre, the renderer's
    second test point), projected with grid2img_matrix, lands inside some camera's image, and
    the projection of the voxel (its 8 corners' pixel window) nearly always shows the voxel's
    own object (objects fill edge voxels partly, so the centre pixel alone may miss it)."""
    frame, _, _, out = replayed
    objects = np.argwhere((out['mask_camera'] == 1)
                          & (out['semantics'] < CLASS['driveable_surface']))
    assert len(objects) > 500
    centres = voxel_centers(dataset=OCC3D)[tuple(objects.T)]
    corners = (centres[:, None] + 0.2 * (2 * np.array(list(np.ndindex(2, 2, 2))) - 1)
               ).reshape(-1, 3)
    owner = out['owner'][tuple(objects.T)]
    seen, found = np.zeros(len(objects), bool), np.zeros(len(objects), bool)
    for cam, name in enumerate(CAMS):
        seen |= project(frame, name, centres)[1]
        seen |= project(frame, name, centres + [0.0, 0.0, 0.2])[1]
        pixel, inside = project(frame, name, corners)
        pixel, inside = pixel.reshape(-1, 8, 2), inside.reshape(-1, 8).all(axis=1)
        lo, hi = pixel.min(axis=1), pixel.max(axis=1) + 1
        for i in np.flatnonzero(inside):
            window = out['pixel_owner'][cam, lo[i, 1]:hi[i, 1], lo[i, 0]:hi[i, 0]]
            found[i] |= bool((window == owner[i]).any())
    assert seen.all()
    # 0.93 at 160 x 90, 0.995 at 640 x 360: misses are slivers of car roofs in layer 6
    assert found.mean() > 0.9, found.mean()


def test_class_mapping():
    categories = ['vehicle', 'vehicle', 'vehicle', 'pedestrian', 'traffic_cone', 'barrier',
                  'bicycle', 'czone_sign', 'generic_object']
    sizes = [[4.5, 1.8, 1.5], [5.6, 2.0, 2.2], [7.2, 2.4, 3.2]] + [[1.0, 1.0, 1.0]] * 6
    names = [OCC3D.class_names[c] for c in object_classes(categories, sizes)]
    assert names == ['car', 'car', 'truck', 'pedestrian', 'traffic_cone', 'barrier', 'bicycle',
                     'manmade', 'others']
    with pytest.raises(ValueError, match="'tram'"):
        object_classes(['tram'], [[10.0, 2.5, 3.0]])


def test_written_classes_follow_the_mapping(replayed):
    _, world, classes, out = replayed
    semantics, owner = out['semantics'], out['owner']
    assert semantics.max() <= FREE
    objects = owner >= 0
    assert np.array_equal(semantics[objects], classes[owner[objects]])
    vehicles = np.array([c == 'vehicle' for c in world.objects.category])
    long = world.objects.size[:, 0] >= 6.0
    assert (classes[vehicles & long] == CLASS['truck']).all() and (vehicles & long).any()
    assert (classes[vehicles & ~long] == CLASS['car']).all()
    present = set(np.unique(semantics))
    assert {CLASS['car'], CLASS['driveable_surface'], CLASS['sidewalk'], CLASS['manmade'],
            FREE} <= present


def ego_voxelize(parts, layout, classes):
    _, _, owner, kinds = voxelize_frame(parts, layout, EGO2GLOBAL, OCC3D)
    return occ3d_semantics(owner, kinds, classes)


def test_hand_placed_car_and_truck_in_the_ego_grid():
    """A car with faces on voxel faces: ego x 8..12 m, y -4.8..-3.2 m, z 0..1.6 m (standing on
    the road, so it overlaps the road layer 2 = [-0.2, 0.2] m) fills voxels x 120..129,
    y 88..91, z 2..6 (voxel i spans -40 + 0.4 i metres); a 7 m truck is a truck."""
    boxes = [[10.0, -4.0, 0.8, 4.0, 1.6, 1.6, 0.0], [-10.0, 6.0, 1.5, 7.0, 2.4, 3.0, 0.0]]
    parts = make_parts(boxes, 0, -1, [0, 1], [200, 30, 30], MATERIAL['plain'])
    classes = object_classes(['vehicle', 'vehicle'], [[4.0, 1.6, 1.6], [7.0, 2.4, 3.0]])
    semantics = ego_voxelize(parts, layout_of('lot'), classes)
    car = np.zeros(GRID_SHAPE, dtype=bool)
    car[120:130, 88:92, 2:7] = True
    assert (semantics[car] == CLASS['car']).all()
    assert semantics[125, 90, 7] == FREE and semantics[119, 90, 4] == FREE
    assert semantics[130, 90, 4] == FREE and semantics[125, 87, 4] == FREE
    assert semantics[125, 87, 2] == CLASS['driveable_surface']  # the road beside it
    assert semantics[75, 115, 5] == CLASS['truck']  # ego (-10, 6, 2.2)


def test_ground_layers_in_the_ego_grid():
    """The road plane z = 0 lies inside layer 2 = [-0.2, 0.2] m: flat ground is layer 2 only;
    terrain rising above 0.2 m somewhere over a column adds layer 3, never layer 4."""
    empty = concat_parts([])
    semantics = ego_voxelize(empty, layout_of('lot'), np.zeros(0, np.uint8))
    assert (semantics[:, :, 2] < FREE).all()
    assert (semantics[:, :, [0, 1]] == FREE).all() and (semantics[:, :, 3:] == FREE).all()
    # ego (0.2, y) lies at global road offset d = -2 + 0.2 sin 0.3 + y cos 0.3
    assert semantics[100, 100, 2] == CLASS['driveable_surface']  # y = 0.2 m: d = -1.7 m
    assert semantics[100, 71, 2] == CLASS['sidewalk']  # y = -11.4 m: d = -12.8 m

    green = layout_of('green', peak=0.45)
    semantics = ego_voxelize(empty, green, np.zeros(0, np.uint8))
    layer3 = semantics[:, :, 3] < FREE
    assert (semantics[:, :, 4:] == FREE).all() and layer3.sum() > 1000
    assert (semantics[:, :, 3][layer3] == CLASS['terrain']).all()
    offsets = (np.arange(8) + 0.5) / 8 * 0.4  # 8 x 8 samples per column
    local = np.stack(np.meshgrid(np.arange(200)[:, None] * 0.4 + offsets - 40.0,
                                 np.arange(200)[:, None] * 0.4 + offsets - 40.0,
                                 indexing='ij'), axis=-1).reshape(-1, 2)
    world = local @ EGO2GLOBAL[:2, :2].T + EGO2GLOBAL[:2, 3]
    from occnet.datasets.synthetic.layout import terrain_height
    height = terrain_height(green, world[:, 0], world[:, 1]).reshape(200, 8, 200, 8).max((1, 3))
    assert layer3[height > 0.21].all() and not layer3[height < 0.19].any()


def test_lidar_mask_by_hand():
    """From ego (0.2, 0.2, 1.2), in voxel (100, 100, 5): a ray 2 m along x crosses voxels
    100..105; a diagonal through voxel corners crosses only the voxels on the diagonal."""
    origin = [0.2, 0.2, 1.2]
    along = np.argwhere(lidar_mask(origin, [[2.2, 0.2, 1.2]]))
    assert along.tolist() == [[x, 100, 5] for x in range(100, 106)]
    diagonal = np.argwhere(lidar_mask(origin, [[1.0, 1.0, 1.2]]))
    assert diagonal.tolist() == [[100, 100, 5], [101, 101, 5], [102, 102, 5]]
    outside = lidar_mask(origin, [[0.2, 0.2, 30.0]])  # leaves through the top at 5.4 m
    assert np.argwhere(outside).tolist() == [[100, 100, z] for z in range(5, 16)]


def test_mask_lidar_holds_the_returns(root):
    frame = load_occ3d_infos(str(root / 'occ_infos_temporal_val.pkl'), CAMS)[0]
    semantics, mask_lidar, _ = load_occ3d_label(str(root / frame['occ_gt_path']), OCC3D)
    points = load_points(str(root / frame['lidar_path']), frame['token'])
    assert points.shape[1] == 5 and len(points) > 10_000
    lidar2ego = frame['lidar2ego']
    assert np.allclose(lidar2ego, lidar2ego_matrix(OCC3D))
    ego = points[:, :3] @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    ray = ego - lidar2ego[:3, 3]
    ends = ego + 0.005 * ray / np.linalg.norm(ray, axis=1, keepdims=True)  # just behind
    index = np.floor((ends - np.array([-40.0, -40.0, -1.0])) / 0.4).astype(int)
    inside = np.all((index >= 0) & (index < GRID_SHAPE), axis=1)
    hit = tuple(index[inside].T)
    assert inside.sum() > 5000 and mask_lidar[hit].all()
    assert (semantics[hit] < FREE).mean() > 0.97  # returns end on labelled surfaces
    half_way = np.floor((ego[inside] - ray[inside] / 2 + [40.0, 40.0, 1.0]) / 0.4).astype(int)
    assert mask_lidar[tuple(half_way.T)].all()
    assert not mask_lidar.all() and mask_lidar.mean() < 0.5


def test_pcd_bin_reading(tmp_path):
    points = np.arange(15, dtype=np.float32).reshape(3, 5)
    good = tmp_path / 'good.pcd.bin'
    good.write_bytes(points.tobytes())
    assert np.array_equal(load_points(str(good)), points)
    assert load_points(str(good)).flags.writeable
    assert point_fields(str(good)) == ('x', 'y', 'z', 'intensity', 'ring')
    cut = tmp_path / 'cut.pcd.bin'
    cut.write_bytes(points.tobytes()[:-3])
    with pytest.raises(DataError, match=r'cut\.pcd\.bin \(frame tok7\): truncated: 57 bytes'):
        load_points(str(cut), 'tok7')
    with pytest.raises(MissingFileError, match='nope.pcd.bin for frame tok7'):
        load_points(str(tmp_path / 'nope.pcd.bin'), 'tok7')


def test_same_seed_gives_identical_files(root, tmp_path):
    """Log 0 alone, in-process with one worker, writes the same bytes as log 0 of the
    2-worker command-line set (a log depends on the seed, its index and its length only)."""
    generate_occ3d_dataset(tmp_path, 1, FRAMES, image_size=IMAGE_SIZE, seed=SEED, val_logs=0,
                           log=None)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*') if p.is_file())
    files.remove(pathlib.Path('occ_infos_temporal_val.pkl'))  # log 1 is in the fixture's
    assert len(files) == 1 + FRAMES * (len(CAMS) + 2)
    for path in files:
        assert (tmp_path / path).read_bytes() == (root / path).read_bytes(), path


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='num_logs'):
        generate_occ3d_dataset(tmp_path, 0, 2, log=None)
    with pytest.raises(ValueError, match='val_logs'):
        generate_occ3d_dataset(tmp_path, 2, 2, val_logs=2, log=None)
    with pytest.raises(ValueError, match='image_size'):
        generate_occ3d_dataset(tmp_path, 1, 2, image_size=(160,), log=None)
    tool = load_script('tools/create_synthetic_occ3d.py')
    with pytest.raises(SystemExit, match=r'val_logs must be an integer in 0..num_logs - 1 = 0 '):
        tool.main(['--out-dir', str(tmp_path), '--num-logs', '1', '--val-logs', '1'])
    assert not any(tmp_path.iterdir())


def test_openscene_output_is_unchanged(tmp_path):
    """The OpenScene writer's labels, visibility and sweeps of a tiny set keep the bytes they
    had before the pipeline took a dataset description (JPEG and pickle bytes are left out:
    they depend on the libjpeg and numpy builds)."""
    generate_dataset(tmp_path, num_logs=1, frames_per_log=2, image_size=(96, 54), seed=5,
                     frames_per_scene=2, with_lidar=True, log=None)
    digest = hashlib.sha256()
    for path in sorted(tmp_path.rglob('*')):
        if path.suffix in ('.npy', '.pcd'):
            digest.update(str(path.relative_to(tmp_path)).encode())
            digest.update(path.read_bytes())
    assert digest.hexdigest() == OPENSCENE_DIGEST
