"""collect_data on small data roots in both release layouts, checked by value."""
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from occnet.datasets.collect import V10, V11, collect, split_logs
from occnet.datasets.infos import DataError
from occnet.datasets.synthetic import generate_dataset
from occnet.descriptions import OPENSCENE

from conftest import REPO_ROOT

META = os.path.join(V11, 'meta_datas', 'mini')
V10_META = os.path.join(V10, 'meta_datas', 'meta_data_mini.pkl')


@pytest.fixture(scope='module')
def source_root(tmp_path_factory):
    """4 logs x 4 frames (scenes of 2), 4-digit label names, 32x18 images."""
    root = tmp_path_factory.mktemp('collect-src')
    generate_dataset(root, num_logs=4, frames_per_log=4, image_size=(32, 18), seed=5,
                     frames_per_scene=2, label_digits=4, log=None)
    return root


@pytest.fixture
def root(source_root, tmp_path):
    """A private copy that a test may damage."""
    return shutil.copytree(source_root, tmp_path / 'root', symlinks=True)


def raw_logs(root):
    logs = {}
    for name in sorted(os.listdir(root / META)):
        with open(root / META / name, 'rb') as f:
            logs[name[:-4]] = pickle.load(f)
    return logs


def rewrite(path, change):
    with open(path, 'rb') as f:
        content = pickle.load(f)
    change(content)
    with open(path, 'wb') as f:
        pickle.dump(content, f, protocol=4)


def make_v10_only(root):
    """The v1.0-only layout: no v1.1 metadata, images under openscene-v1.0/sensor_blobs/<log>."""
    shutil.rmtree(root / V11 / 'meta_datas')
    (root / V10 / 'sensor_blobs').mkdir()
    for log in os.listdir(root / V11 / 'sensor_blobs' / 'mini'):
        shutil.move(root / V11 / 'sensor_blobs' / 'mini' / log, root / V10 / 'sensor_blobs' / log)
    shutil.rmtree(root / V11)


def test_joined_paths_by_value(source_root):
    train, val, stats = collect(str(source_root), 'mini', val_ratio=0.25, seed=0)
    frames = {f['token']: f for f in train + val}
    assert len(frames) == 16 and stats['all'] == dict(logs=4, scenes=8, frames=16, labelled=16,
                                                      unlabelled=0)
    for log, raw in raw_logs(source_root).items():
        for frame in raw:
            out = frames[frame['token']]
            for cam in OPENSCENE.camera_names:
                path = out['cams'][cam]['data_path']
                assert path == f'{V11}/sensor_blobs/mini/{log}/{cam}/{frame["token"]}.jpg'
                assert os.path.isfile(source_root / path)
            folder = f'{V10}/occupancy/mini/{frame["scene_name"]}/occ_gt'
            assert out['occ_gt_final_path'] == f'{folder}/{frame["frame_idx"]:04d}_occ_final.npy'
            assert out['flow_gt_final_path'] == f'{folder}/{frame["frame_idx"]:04d}_flow_final.npy'
            assert out['occ_invalid_path'] == f'{folder}/{frame["frame_idx"]:04d}_occ_invalid.npy'
            assert os.path.isfile(source_root / out['occ_invalid_path'])
            assert out['lidar_path'] == (f'{V11}/sensor_blobs/mini/{log}/MergedPointCloud/'
                                         f'{frame["token"]}.pcd')
            np.testing.assert_array_equal(out['lidar2global'], frame['lidar2global'])
            np.testing.assert_array_equal(out['can_bus'], frame['can_bus'])
    # slim infos keep what training needs only; --full-infos keeps everything
    assert 'anns' not in train[0] and 'traffic_lights' not in train[0]
    assert set(train[0]['cams']['CAM_F0']) == {'data_path', 'sensor2lidar_rotation',
                                               'sensor2lidar_translation', 'cam_intrinsic'}
    full, _, _ = collect(str(source_root), 'mini', val_ratio=0.25, seed=0, slim=False)
    assert 'anns' in full[0] and 'distortion' in full[0]['cams']['CAM_F0']
    assert full[0]['lidar_path'] == train[0]['lidar_path']


def test_lidar_path_relative_absolute_or_none(root):
    name = sorted(os.listdir(root / META))[0]
    frames = raw_logs(root)[name[:-4]]
    absolute = f'/data/nuplan/sensor_blobs/{name[:-4]}/MergedPointCloud/x.pcd'

    def change(log):
        del log[0]['lidar_path']
        log[1]['lidar_path'] = None
        log[2]['lidar_path'] = absolute
        log[3]['lidar_path'] = f'./sensor_blobs/mini/{log[3]["lidar_path"]}'
    rewrite(root / META / name, change)
    train, _, _ = collect(str(root), 'mini', val_ratio=0.0)
    out = {f['token']: f['lidar_path'] for f in train}
    assert [out[f['token']] for f in frames] == [
        None, None, absolute,
        f'{V11}/sensor_blobs/mini/{name[:-4]}/MergedPointCloud/{frames[3]["token"]}.pcd']


def test_split_is_deterministic_disjoint_and_seeded(source_root):
    runs = [collect(str(source_root), 'mini', val_ratio=0.5, seed=s)[:2] for s in (0, 0, 1, 2)]
    logs = [({f['log_name'] for f in t}, {f['log_name'] for f in v}) for t, v in runs]
    assert [f['token'] for f in runs[0][0]] == [f['token'] for f in runs[1][0]]
    for train_logs, val_logs in logs:
        assert len(train_logs) == len(val_logs) == 2 and not train_logs & val_logs
    assert len({tuple(sorted(v)) for _, v in logs}) > 1  # another seed, another split
    names = [f'log{i}' for i in range(10)]
    assert split_logs(names, 0.3, 1) == split_logs(list(reversed(names)), 0.3, 1)
    train, val = split_logs(names, 0.3, 1)
    assert len(val) == 3 and sorted(train + val) == names
    assert split_logs(names, 0.0, 1) == (names, [])


def test_unlabelled_frames_are_counted_and_left_out(root):
    logs = raw_logs(root)
    dropped = logs[sorted(logs)[0]][1]['token']
    rewrite(root / V10_META, lambda c: c.__setitem__(
        'infos', [f for f in c['infos'] if f['token'] != dropped]))
    train, val, stats = collect(str(root), 'mini', val_ratio=0.25, seed=0)
    assert stats['all'] == dict(logs=4, scenes=8, frames=16, labelled=15, unlabelled=1)
    assert dropped not in {f['token'] for f in train + val} and len(train + val) == 15
    kept, kept_val, _ = collect(str(root), 'mini', val_ratio=0.25, seed=0, keep_unlabelled=True)
    frame = {f['token']: f for f in kept + kept_val}[dropped]
    assert frame['occ_gt_final_path'] is None and frame['occ_invalid_path'] is None


def test_filters_by_log_list_and_map_location(source_root):
    logs = raw_logs(source_root)
    names = sorted(logs)
    train, val, stats = collect(str(source_root), 'mini', val_ratio=0.0, logs=names[1:3])
    assert {f['log_name'] for f in train} == set(names[1:3]) and val == []
    assert stats['all']['logs'] == 2
    city = logs[names[0]][0]['map_location']
    expected = {n for n in names if logs[n][0]['map_location'] == city}
    train, _, _ = collect(str(source_root), 'mini', val_ratio=0.0, map_locations={city})
    assert {f['log_name'] for f in train} == expected
    with pytest.raises(DataError, match="requested logs have no metadata.*'nope'"):
        collect(str(source_root), 'mini', logs=['nope'])


def test_v10_only_layout(root):
    tokens = {f['token']: (log, f) for log, raw in raw_logs(root).items() for f in raw}
    make_v10_only(root)
    train, val, stats = collect(str(root), 'mini', val_ratio=0.25, seed=0)
    assert stats['all']['frames'] == stats['all']['labelled'] == 16
    for out in train + val:
        log, frame = tokens[out['token']]
        path = out['cams']['CAM_L1']['data_path']
        assert path == f'{V10}/sensor_blobs/{log}/CAM_L1/{frame["token"]}.jpg'
        assert out['lidar_path'] == (f'{V10}/sensor_blobs/{log}/MergedPointCloud/'
                                     f'{frame["token"]}.pcd')
        assert os.path.isfile(root / path) and os.path.isfile(root / out['occ_gt_final_path'])


def test_bad_metadata_raises_with_file_and_token_or_is_skipped(root):
    name = sorted(os.listdir(root / META))[2]
    logs = raw_logs(root)
    token = logs[name[:-4]][3]['token']
    rewrite(root / META / name, lambda frames: frames[3]['can_bus'].__setitem__(4, np.nan))
    with pytest.raises(DataError, match=f'{root / META / name}: frame {token}: can_bus holds '
                       'NaN.*verify_dataset.py.*--skip-bad'):
        collect(str(root), 'mini')
    train, val, stats = collect(str(root), 'mini', skip_bad=True)
    assert stats['bad'] == 1 and token not in {f['token'] for f in train + val}
    assert stats['bad_examples'][0].startswith(f'{root / META / name}: frame {token}')


def test_truncated_and_foreign_pickles_name_the_file(root):
    name = sorted(os.listdir(root / META))[1]
    data = (root / META / name).read_bytes()
    (root / META / name).write_bytes(data[:len(data) // 3])
    with pytest.raises(DataError, match=f'cannot read metadata pickle {root / META / name}'):
        collect(str(root), 'mini')
    (root / META / name).write_bytes(pickle.dumps({'not': 'a list'}))
    with pytest.raises(DataError, match=f'{root / META / name} holds a dict; a v1.1 metadata '
                       'pickle is a list'):
        collect(str(root), 'mini')
    (root / V10_META).write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match=f'{root / V10_META} is not a v1.0 metadata pickle'):
        collect(str(root), 'mini')
    with pytest.raises(DataError, match='no metadata under'):
        collect(str(root / 'elsewhere'), 'mini')


def test_collect_data_cli_writes_infos_and_summary(source_root, tmp_path):
    names = sorted(raw_logs(source_root))
    log_list = tmp_path / 'logs.txt'
    log_list.write_text('# my logs\n' + '\n'.join(f'{n}.pkl' for n in names[:3]) + '\n')
    proc = subprocess.run(
        [sys.executable, 'tools/collect_data.py', '--data-root', str(source_root), '--split',
         'mini', '--out-dir', str(tmp_path), '--val-ratio', '0.34', '--logs', str(log_list)],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split() for line in lines if line.split()[:1] in (['all'], ['train'],
                                                                   ['val'])] == [
        ['all', '3', '6', '12', '12', '0'], ['train', '2', '4', '8', '8', '0'],
        ['val', '1', '2', '4', '4', '0']]
    with open(tmp_path / 'openscene_mini_val.pkl', 'rb') as f:
        val = pickle.load(f)
    assert len(val) == 4 and {f['log_name'] for f in val} <= set(names[:3])
    assert 'eta' in proc.stderr


def test_log_list_keeps_dotted_nuplan_names(tmp_path):
    from occnet.datasets.collect import read_log_list
    path = tmp_path / 'logs.txt'
    path.write_text('2021.05.12.22.00.38_veh-35_01008_01518\n'
                    'meta_datas/mini/2021.06.01.10.00.00_veh-12_00001_00002.pkl\n'
                    '# a comment\n\n2021.07.01.10.00.00_veh-14_00003_00004/\n')
    assert read_log_list(str(path)) == {'2021.05.12.22.00.38_veh-35_01008_01518',
                                        '2021.06.01.10.00.00_veh-12_00001_00002',
                                        '2021.07.01.10.00.00_veh-14_00003_00004'}


@pytest.mark.parametrize('damage,problem', [
    (lambda f: f['cams']['CAM_L0'].pop('data_path'), "CAM_L0 lacks \\['data_path'\\]"),
    (lambda f: f['cams'].__setitem__('CAM_B0', None), 'CAM_B0 entry is a NoneType'),
    (lambda f: f.pop('timestamp'), "missing key 'timestamp'"),
    (lambda f: f.__setitem__('timestamp', None), 'timestamp is None'),
    (lambda f: f.__setitem__('lidar2global', np.eye(3)), 'lidar2global has shape \\(3, 3\\)'),
    (lambda f: [f.pop(k) for k in ('lidar2ego', 'lidar2ego_translation')], 'no pose'),
])
def test_malformed_frames_are_reported_or_skipped(root, damage, problem):
    name = sorted(os.listdir(root / META))[0]
    token = raw_logs(root)[name[:-4]][1]['token']
    rewrite(root / META / name, lambda frames: damage(frames[1]))
    for workers in (1, 2):
        with pytest.raises(DataError, match=f'{root / META / name}: frame {token}: .*{problem}'):
            collect(str(root), 'mini', workers=workers)
    train, val, stats = collect(str(root), 'mini', skip_bad=True, workers=2)
    assert stats['bad'] == 1 and len(train + val) == 15


def test_a_dead_worker_is_an_error_not_a_hang(source_root, monkeypatch):
    from occnet.datasets import collect as collect_module
    monkeypatch.setattr(collect_module, 'process_log', lambda *args: os._exit(9))
    with pytest.raises(DataError, match='worker process died'):
        collect_module.collect_logs(str(source_root), 'mini', workers=2)
