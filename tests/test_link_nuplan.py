"""tools/link_nuplan.py and occnet.datasets.nuplan_link on a fake nuPlan tree."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from occnet.datasets.collect import read_v11_log, v11_log_files
from occnet.datasets.infos import DataError
from occnet.datasets.nuplan_link import (blob_relative_path, link_one, link_split,
                                         sensor_blobs_dir)
from occnet.descriptions import OPENSCENE

NUM_LOGS, FRAMES_PER_LOG = 2, 3
NUM_FILES = NUM_LOGS * FRAMES_PER_LOG * len(OPENSCENE.camera_names)


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    """A synthetic data root of NUM_LOGS x FRAMES_PER_LOG frames (generated once)."""
    from occnet.datasets.synthetic import generate_dataset
    root = tmp_path_factory.mktemp('generated')
    generate_dataset(root, num_logs=NUM_LOGS, frames_per_log=FRAMES_PER_LOG,
                     image_size=(32, 18), seed=2, frames_per_scene=3, log=None)
    return root


@pytest.fixture
def roots(generated, tmp_path):
    """(data_root with metadata and an empty sensor_blobs/mini, nuPlan sensor root without
    one image, the removed image's sensor_blobs-relative path, its log name)."""
    data_root, nuplan = tmp_path / 'openscene', tmp_path / 'nuplan' / 'sensor_blobs'
    shutil.copytree(generated, data_root)
    blobs = sensor_blobs_dir(str(data_root), 'mini')
    nuplan.mkdir(parents=True)
    for name in os.listdir(blobs):
        shutil.move(os.path.join(blobs, name), nuplan / name)
    log_name, source = next(iter(v11_log_files(str(data_root), 'mini').items()))
    removed = read_v11_log(source)[1]['cams']['CAM_L1']['data_path']
    os.remove(nuplan / removed)
    return str(data_root), str(nuplan), removed, log_name


def all_relative_paths(data_root):
    return [frame['cams'][cam]['data_path']
            for source in v11_log_files(data_root, 'mini').values()
            for frame in read_v11_log(source) for cam in OPENSCENE.camera_names]


def run_tool(*args):
    return subprocess.run([sys.executable, 'tools/link_nuplan.py', *args], cwd=REPO_ROOT,
                          capture_output=True, text=True)


def test_links_every_needed_file_and_reports_the_missing_one(roots):
    data_root, nuplan, removed, log_name = roots
    report = link_split(nuplan, data_root, 'mini')
    assert (report['linked'], report['missing'], report['present']) == (NUM_FILES - 1, 1, 0)
    assert report['files'] == NUM_FILES and report['frames'] == NUM_LOGS * FRAMES_PER_LOG
    assert report['missing_examples'] == [os.path.join(nuplan, removed)]
    assert report['missing_per_log'] == {log_name: 1}
    blobs = sensor_blobs_dir(data_root, 'mini')
    for rel in all_relative_paths(data_root):
        dest = os.path.join(blobs, rel)
        if rel == removed:
            assert not os.path.lexists(dest)
            continue
        assert os.path.islink(dest) and os.readlink(dest) == os.path.join(nuplan, rel)
        with open(dest, 'rb') as linked, open(os.path.join(nuplan, rel), 'rb') as original:
            assert linked.read() == original.read()

    again = link_split(nuplan, data_root, 'mini')
    assert (again['present'], again['linked'], again['missing']) == (NUM_FILES - 1, 0, 1)


def test_lidar_is_linked_only_when_asked(roots):
    data_root, nuplan, _, _ = roots
    source = next(iter(v11_log_files(data_root, 'mini').values()))
    lidar_rel = read_v11_log(source)[0]['lidar_path']
    os.makedirs(os.path.dirname(os.path.join(nuplan, lidar_rel)))
    with open(os.path.join(nuplan, lidar_rel), 'wb') as f:
        f.write(b'pcd')
    report = link_split(nuplan, data_root, 'mini', with_lidar=True)
    assert report['files'] == NUM_FILES + NUM_LOGS * FRAMES_PER_LOG
    assert report['linked'] == (NUM_FILES - 1) + 1
    assert report['missing'] == 1 + (NUM_LOGS * FRAMES_PER_LOG - 1)
    with open(os.path.join(sensor_blobs_dir(data_root, 'mini'), lidar_rel), 'rb') as f:
        assert f.read() == b'pcd'


def test_dry_run_creates_nothing(roots):
    data_root, nuplan, _, _ = roots
    report = link_split(nuplan, data_root, 'mini', dry_run=True)
    assert (report['linked'], report['missing']) == (NUM_FILES - 1, 1)
    assert os.listdir(sensor_blobs_dir(data_root, 'mini')) == []


def test_wrong_link_is_a_conflict_unless_forced(roots, tmp_path):
    data_root, nuplan, _, _ = roots
    rel = all_relative_paths(data_root)[0]
    dest = os.path.join(sensor_blobs_dir(data_root, 'mini'), rel)
    os.makedirs(os.path.dirname(dest))
    elsewhere = tmp_path / 'elsewhere.jpg'
    elsewhere.write_bytes(b'not the image')
    os.symlink(elsewhere, dest)

    report = link_split(nuplan, data_root, 'mini')
    assert (report['conflict'], report['linked'], report['replaced']) == (1, NUM_FILES - 2, 0)
    assert report['conflict_examples'] == [f'{dest} -> {elsewhere}']
    assert os.readlink(dest) == str(elsewhere)

    forced = link_split(nuplan, data_root, 'mini', force=True)
    assert (forced['replaced'], forced['conflict'], forced['present']) == (1, 0, NUM_FILES - 2)
    assert os.readlink(dest) == os.path.join(nuplan, rel)


def test_real_file_is_left_alone_even_with_force(tmp_path):
    src, dest = tmp_path / 'src.jpg', tmp_path / 'dest.jpg'
    src.write_bytes(b'nuplan')
    dest.write_bytes(b'downloaded')
    assert link_one(str(dest), str(src), force=True) == 'present'
    assert dest.read_bytes() == b'downloaded' and not dest.is_symlink()


def test_blob_relative_path_forms():
    assert blob_relative_path('log/CAM_F0/a.jpg', 'mini', 'x.pkl') == 'log/CAM_F0/a.jpg'
    assert blob_relative_path('sensor_blobs/mini/log/CAM_F0/a.jpg', 'mini',
                              'x.pkl') == 'log/CAM_F0/a.jpg'
    with pytest.raises(DataError, match='x.pkl'):
        blob_relative_path('../../etc/passwd', 'mini', 'x.pkl')
    with pytest.raises(DataError, match='x.pkl'):
        blob_relative_path('/abs/log/CAM_F0/a.jpg', 'mini', 'x.pkl')


def test_cli_lists_the_missing_file_and_exits_1(roots, tmp_path):
    data_root, nuplan, removed, log_name = roots
    out_json = tmp_path / 'report.json'
    result = run_tool('--nuplan-sensor-root', nuplan, '--data-root', data_root, '--split',
                      'mini', '--out-json', str(out_json))
    assert result.returncode == 1, result.stderr
    assert os.path.join(nuplan, removed) in result.stdout
    assert f'{log_name}: 1' in result.stdout
    report = json.loads(out_json.read_text())
    assert (report['linked'], report['missing']) == (NUM_FILES - 1, 1)


def test_wrong_nuplan_root_is_named(roots, tmp_path):
    data_root, _, _, _ = roots
    with pytest.raises(DataError, match='nope does not exist'):
        link_split(str(tmp_path / 'nope'), data_root, 'mini')


def test_complete_tree_reports_no_problem(roots):
    data_root, nuplan, removed, _ = roots
    shutil.copy(os.path.join(nuplan, all_relative_paths(data_root)[0]),
                os.path.join(nuplan, removed))
    report = link_split(nuplan, data_root, 'mini')
    assert (report['linked'], report['missing'], report['conflict']) == (NUM_FILES, 0, 0)
