"""tools/verify_dataset.py and occnet.datasets.verify on a tiny synthetic data root: a clean
root passes, and each kind of damage is reported once, at the exact path that was damaged."""
import hashlib
import json
import os
import pickle
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from occnet.datasets.checksums import read_md5_file, verify_archives
from occnet.datasets.verify import CHECKS, Report, image_problem, verify_infos, verify_split

NUM_LOGS, FRAMES_PER_LOG, NUM_CAMS = 2, 4, 8
SPLIT = 'mini'
V11_META = os.path.join('openscene-v1.1', 'meta_datas', SPLIT)
V11_BLOBS = os.path.join('openscene-v1.1', 'sensor_blobs', SPLIT)


@pytest.fixture(scope='module')
def clean_root(tmp_path_factory):
    from occnet.datasets.synthetic import generate_dataset
    root = tmp_path_factory.mktemp('verify-clean')
    generate_dataset(root, num_logs=NUM_LOGS, frames_per_log=FRAMES_PER_LOG,
                     image_size=(64, 36), seed=1, frames_per_scene=2, with_lidar=True, log=None)
    return str(root)


@pytest.fixture
def root(clean_root, tmp_path):
    """A private copy of the clean root, free to damage."""
    copy = str(tmp_path / 'root')
    shutil.copytree(clean_root, copy)
    return copy


def log_names(root):
    return sorted(os.path.splitext(name)[0] for name in os.listdir(os.path.join(root, V11_META)))


def read_log(root, log):
    with open(os.path.join(root, V11_META, f'{log}.pkl'), 'rb') as f:
        return pickle.load(f)


def first_frame(root):
    """(log name, token, v1.0 label frame dict) of the first frame of the first log."""
    log = log_names(root)[0]
    token = min(read_log(root, log), key=lambda f: f['timestamp'])['token']
    with open(os.path.join(root, 'openscene-v1.0', 'meta_datas', f'meta_data_{SPLIT}.pkl'),
              'rb') as f:
        label = next(f for f in pickle.load(f)['infos'] if f['token'] == token)
    return log, token, label


def label_path(root, label, key):
    return os.path.join(root, 'openscene-v1.0', label[key])


def verify(root, **kwargs):
    return verify_split(root, SPLIT, workers=2, **kwargs)


def assert_only(report, check, path, token=None):
    """Exactly one problem, of `check`, naming `path` (and `token`)."""
    assert {c: n for c, n in report.counts.items() if n} == {check: 1}
    (issue,) = report.issues[check]
    assert issue.path == path
    if token is not None:
        assert issue.token == token
    assert not report.ok


def test_clean_root_cli(clean_root, tmp_path):
    out_json = tmp_path / 'report.json'
    result = subprocess.run([sys.executable, 'tools/verify_dataset.py', '--data-root',
                             clean_root, '--split', SPLIT, '--out-json', str(out_json)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out_json.read_text())
    assert report['ok'] and report['layout'] == 'openscene-v1.1'
    assert report['counts'] == dict.fromkeys(CHECKS, 0)
    assert report['checked'] == {'logs': NUM_LOGS, 'frames': NUM_LOGS * FRAMES_PER_LOG,
                                 'images': NUM_LOGS * FRAMES_PER_LOG * NUM_CAMS,
                                 'labelled_frames': NUM_LOGS * FRAMES_PER_LOG,
                                 'label_files': NUM_LOGS * FRAMES_PER_LOG * 3}
    assert report['issues'] == {}


def test_deleted_jpeg_cli(root):
    log, token, _ = first_frame(root)
    path = os.path.join(root, V11_BLOBS, log, 'CAM_L0', f'{token}.jpg')
    os.remove(path)
    result = subprocess.run([sys.executable, 'tools/verify_dataset.py', '--data-root', root,
                             '--split', SPLIT, '--workers', '2'],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f'{path} (token {token}): CAM_L0: file not found' in result.stdout
    assert [ln.split()[-1] for ln in result.stdout.splitlines()
            if ln.startswith('images missing')] == ['1']


def run_cli_in_process(args, monkeypatch):
    """Exit code of tools/verify_dataset.py run in this process (no interpreter start-up)."""
    monkeypatch.setattr(sys, 'argv', ['verify_dataset.py', *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(os.path.join(REPO_ROOT, 'tools', 'verify_dataset.py'),
                       run_name='__main__')
    return exit_info.value.code


def test_usage_errors_exit_2(tmp_path, monkeypatch, capsys):
    assert run_cli_in_process(['--split', SPLIT], monkeypatch) == 2
    assert run_cli_in_process(['--data-root', str(tmp_path), '--split', SPLIT],
                              monkeypatch) == 2
    assert 'no metadata under' in capsys.readouterr().err


def test_cli_md5_only(tmp_path, monkeypatch, capsys):
    (tmp_path / 'a.tgz').write_bytes(b'x')
    (tmp_path / 'md5.txt').write_text(f'{hashlib.md5(b"y").hexdigest()}  a.tgz\n')
    assert run_cli_in_process(['--md5', str(tmp_path / 'md5.txt')], monkeypatch) == 1
    out = capsys.readouterr().out
    assert 'images missing' not in out
    assert f'{tmp_path / "a.tgz"}: md5 {hashlib.md5(b"x").hexdigest()}' in out


def test_truncated_jpeg(root):
    log, token, _ = first_frame(root)
    path = os.path.join(root, V11_BLOBS, log, 'CAM_R2', f'{token}.jpg')
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    report = verify(root)
    assert_only(report, 'image_unreadable', path, token)
    assert 'truncated JPEG' in report.issues['image_unreadable'][0].reason
    assert report.checked['images'] == NUM_LOGS * FRAMES_PER_LOG * NUM_CAMS


def test_with_lidar_truncated_and_missing_point_clouds(root):
    log, token, _ = first_frame(root)
    path = os.path.join(root, V11_BLOBS, log, 'MergedPointCloud', f'{token}.pcd')
    report = verify(root, lidar=True)
    assert report.ok and report.checked['point_clouds'] == NUM_LOGS * FRAMES_PER_LOG
    assert verify(root).checked['point_clouds'] == 0  # only with lidar=True
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) - 100])
    report = verify(root, lidar=True)
    assert_only(report, 'lidar_unreadable', path, token)
    reason = report.issues['lidar_unreadable'][0].reason
    assert reason.startswith(f'point cloud {path} (frame {token}): truncated')
    assert 'verify_dataset' not in reason  # we are that tool
    os.remove(path)
    report = verify(root, lidar=True)
    assert_only(report, 'lidar_missing', path, token)
    assert report.issues['lidar_missing'][0].reason == 'file not found'


def test_with_lidar_cli_empty_point_cloud(root, monkeypatch, capsys):
    log, token, _ = first_frame(root)
    path = os.path.join(root, V11_BLOBS, log, 'MergedPointCloud', f'{token}.pcd')
    from occnet.datasets.synthetic.lidar import pcd_bytes
    with open(path, 'wb') as f:
        f.write(pcd_bytes(np.zeros((0, 6), np.float32)))
    args = ['--data-root', root, '--split', SPLIT, '--workers', '2', '--skip-images']
    assert run_cli_in_process(args, monkeypatch) == 0
    assert 'point clouds' not in capsys.readouterr().out
    assert run_cli_in_process(args + ['--with-lidar'], monkeypatch) == 1
    captured = capsys.readouterr()
    assert [ln.split()[-1] for ln in captured.out.splitlines()
            if ln.startswith('point clouds unreadable')] == ['1']
    assert f'{path} (token {token}): no points (POINTS 0)' in captured.out
    assert f'{NUM_LOGS * FRAMES_PER_LOG} point clouds' in captured.out
    assert '[verify] logs 2/2' in captured.err


def test_with_lidar_infos_without_lidar_path(root):
    from occnet.datasets.collect import collect
    _, val, _ = collect(root, SPLIT, val_ratio=0.5, seed=0)
    for frame in val:
        del frame['lidar_path']
    infos = os.path.join(root, 'val.pkl')
    with open(infos, 'wb') as f:
        pickle.dump(val, f, protocol=4)
    report = verify_infos(infos, root, workers=2, images=False, lidar=True)
    assert {c: n for c, n in report.counts.items() if n} == {'lidar_unnamed': len(val)}
    assert {(i.path, i.token) for i in report.issues['lidar_unnamed']} == {
        (infos, f['token']) for f in val}
    assert report.checked['point_clouds'] == 0


def test_image_problem_markers(tmp_path):
    good = tmp_path / 'good.jpg'
    good.write_bytes(b'\xff\xd8' + b'\x12' * 100 + b'\xff\xd9' + b'\x00' * 8)
    png = tmp_path / 'x.jpg'
    png.write_bytes(b'\x89PNG' + b'\x00' * 20)
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    assert image_problem(str(good)) is None
    assert image_problem(str(png))[0] == 'image_unreadable'
    assert image_problem(str(empty)) == ('image_unreadable', 'empty file (0 bytes)')
    assert image_problem(str(tmp_path / 'none.jpg')) == ('image_missing', 'file not found')


def test_decode_flags_corrupt_jpeg_data(root):
    log, token, _ = first_frame(root)
    path = os.path.join(root, V11_BLOBS, log, 'CAM_F0', f'{token}.jpg')
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:2] + b'\x00' * (len(data) - 4) + data[-2:])
    assert verify(root).ok
    assert_only(verify(root, decode=True), 'image_unreadable', path, token)


def test_label_wrong_shape(root):
    _, token, label = first_frame(root)
    path = label_path(root, label, 'occ_gt_final_path')
    np.save(path, np.zeros((5, 3), dtype=np.int64))
    report = verify(root)
    assert_only(report, 'occ_bad', path, token)
    assert 'shape (5, 3)' in report.issues['occ_bad'][0].reason


def test_label_voxel_index_out_of_range(root):
    _, token, label = first_frame(root)
    path = label_path(root, label, 'occ_gt_final_path')
    occ = np.load(path)
    occ[3, 0] = 200 * 200 * 16
    np.save(path, occ)
    assert_only(verify(root), 'occ_bad', path, token)


def test_deleted_label_file(root):
    _, token, label = first_frame(root)
    path = label_path(root, label, 'occ_gt_final_path')
    os.remove(path)
    assert_only(verify(root), 'label_missing', path, token)


def test_flow_row_count_differs(root):
    _, token, label = first_frame(root)
    path = label_path(root, label, 'flow_gt_final_path')
    np.save(path, np.load(path)[:-1])
    report = verify(root)
    assert_only(report, 'flow_bad', path, token)
    rows = len(np.load(label_path(root, label, 'occ_gt_final_path')))
    assert f'expected float ({rows}, 2), one row per' in report.issues['flow_bad'][0].reason


def test_flow_checked_when_occ_is_bad(root):
    _, token, label = first_frame(root)
    occ_path = label_path(root, label, 'occ_gt_final_path')
    flow_path = label_path(root, label, 'flow_gt_final_path')
    np.save(occ_path, np.zeros((5, 3), dtype=np.int64))
    np.save(flow_path, np.zeros((7, 2), dtype=np.int64))
    report = verify(root)
    assert {c: n for c, n in report.counts.items() if n} == {'occ_bad': 1, 'flow_bad': 1}
    assert report.issues['flow_bad'][0].path == flow_path


def test_bad_invalid_voxel_file(root):
    _, token, label = first_frame(root)
    path = label_path(root, label, 'occ_invalid_path')
    np.save(path, np.array([1.5, 2.5]))
    assert_only(verify(root), 'invalid_bad', path, token)


def test_truncated_log_pickle_other_log_still_checked(root):
    bad_log, good_log = log_names(root)
    path = os.path.join(root, V11_META, f'{bad_log}.pkl')
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    report = verify(root)
    assert_only(report, 'metadata_unreadable', path)
    assert report.checked['logs'] == 1
    assert report.checked['frames'] == FRAMES_PER_LOG
    assert report.checked['images'] == FRAMES_PER_LOG * NUM_CAMS


def test_nan_can_bus(root):
    log = log_names(root)[1]
    path = os.path.join(root, V11_META, f'{log}.pkl')
    frames = read_log(root, log)
    frames[2]['can_bus'] = np.array(frames[2]['can_bus'], dtype=np.float64)
    frames[2]['can_bus'][4] = np.nan
    with open(path, 'wb') as f:
        pickle.dump(frames, f, protocol=4)
    report = verify(root)
    assert_only(report, 'frame_bad_metadata', path, frames[2]['token'])
    assert report.issues['frame_bad_metadata'][0].reason == 'can_bus holds NaN or inf'


def test_unlabelled_frame_is_a_warning(root):
    _, token, _ = first_frame(root)
    meta = os.path.join(root, 'openscene-v1.0', 'meta_datas', f'meta_data_{SPLIT}.pkl')
    with open(meta, 'rb') as f:
        content = pickle.load(f)
    content['infos'] = [f for f in content['infos'] if f['token'] != token]
    with open(meta, 'wb') as f:
        pickle.dump(content, f, protocol=4)
    report = verify(root)
    assert {c: n for c, n in report.counts.items() if n} == {'frame_unlabelled': 1}
    assert report.issues['frame_unlabelled'][0].token == token
    assert report.ok
    assert report.checked['labelled_frames'] == NUM_LOGS * FRAMES_PER_LOG - 1


def test_missing_v10_metadata(root):
    meta = os.path.join(root, 'openscene-v1.0', 'meta_datas', f'meta_data_{SPLIT}.pkl')
    os.remove(meta)
    report = verify(root)
    assert report.counts['metadata_unreadable'] == 1
    assert report.issues['metadata_unreadable'][0].path == meta
    assert report.counts['frame_unlabelled'] == NUM_LOGS * FRAMES_PER_LOG
    assert report.num_errors == 1
    assert verify(root, labels=False).ok


def test_skip_images_and_labels(root):
    log, token, label = first_frame(root)
    os.remove(os.path.join(root, V11_BLOBS, log, 'CAM_L0', f'{token}.jpg'))
    os.remove(label_path(root, label, 'occ_gt_final_path'))
    report = verify(root, images=False, labels=False)
    assert report.ok and report.checked['images'] == report.checked['label_files'] == 0
    assert report.checked['frames'] == NUM_LOGS * FRAMES_PER_LOG


def test_v10_only_layout(root):
    shutil.rmtree(os.path.join(root, 'openscene-v1.1', 'meta_datas'))
    for log in os.listdir(os.path.join(root, V11_BLOBS)):
        shutil.move(os.path.join(root, V11_BLOBS, log),
                    os.path.join(root, 'openscene-v1.0', 'sensor_blobs', log))
    report = verify(root)
    assert report.ok, report.to_dict()['issues']
    assert report.info['layout'] == 'openscene-v1.0'
    assert report.counts == dict.fromkeys(CHECKS, 0)
    assert report.checked['logs'] == NUM_LOGS
    assert report.checked['images'] == NUM_LOGS * FRAMES_PER_LOG * NUM_CAMS


def test_collected_infos(root):
    from occnet.datasets.collect import collect
    train, val, _ = collect(root, SPLIT, val_ratio=0.5, seed=0)
    infos = os.path.join(root, 'val.pkl')
    with open(infos, 'wb') as f:
        pickle.dump(val, f, protocol=4)
    assert verify_infos(infos, root, workers=2).checked['images'] == len(val) * NUM_CAMS
    os.remove(os.path.join(root, val[0]['cams']['CAM_B0']['data_path']))
    report = verify_infos(infos, root, workers=2)
    assert_only(report, 'image_missing',
                os.path.join(root, val[0]['cams']['CAM_B0']['data_path']), val[0]['token'])


def test_md5(tmp_path):
    archives = tmp_path / 'downloads'
    archives.mkdir()
    (archives / 'good.tgz').write_bytes(b'a' * 1000)
    (archives / 'bad.tgz').write_bytes(b'b' * 3000)
    good_md5 = hashlib.md5(b'a' * 1000).hexdigest()
    wrong_md5 = hashlib.md5(b'c').hexdigest()
    md5_file = archives / 'md5sum.txt'
    md5_file.write_text(f'{good_md5}  good.tgz\n{wrong_md5} *bad.tgz\n'
                        f'{good_md5}  missing.tgz\n')
    assert read_md5_file(str(md5_file))[1] == (wrong_md5, 'bad.tgz')
    progress = []
    report = verify_archives(str(md5_file), Report(), workers=2,
                             progress=lambda done, total: progress.append((done, total)))
    assert {c: n for c, n in report.counts.items() if n} == {'archive_missing': 1,
                                                             'archive_mismatch': 1}
    assert report.issues['archive_missing'][0].path == str(archives / 'missing.tgz')
    (mismatch,) = report.issues['archive_mismatch']
    assert mismatch.path == str(archives / 'bad.tgz')
    assert hashlib.md5(b'b' * 3000).hexdigest() in mismatch.reason
    assert report.checked['archives'] == 2 and report.checked['archive_bytes'] == 4000
    assert progress[-1] == (4000, 4000)


def test_md5_archive_dir_and_bad_line(tmp_path):
    (tmp_path / 'a.tgz').write_bytes(b'x')
    sums = tmp_path / 'sums' / 'md5.txt'
    sums.parent.mkdir()
    sums.write_text(f'{hashlib.md5(b"x").hexdigest()}  a.tgz\n')
    assert verify_archives(str(sums), Report(), archive_dir=str(tmp_path)).ok
    sums.write_text('not a checksum line\n')
    with pytest.raises(Exception, match='line 1 is not in md5sum format'):
        read_md5_file(str(sums))
