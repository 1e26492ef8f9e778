"""The data tools on the Occ3D-nuScenes layout: tools/verify_dataset.py, tools/dataset_stats.py
and tools/visualize.py on a two-frame nuScenes root (6 tiny JPEGs a frame,
gts/<scene>/<token>/labels.npz, samples/LIDAR_TOP/*.pcd.bin), read through
occnet.datasets.readers."""
import json
import os
import runpy
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT
from occnet.datasets.readers import grid2img_matrices, read_dense_label, read_frames
from occnet.datasets.verify import CHECKS, verify_infos
from occnet.descriptions import OCC3D_NUSCENES as OCC
from occnet.visualization import shade_by_height
from test_occ3d import challenge_frame, write_infos

CAR, PEDESTRIAN, SIDEWALK, VEGETATION, FREE = 4, 7, 13, 16, 17
VOXELS = 200 * 200 * 16
# centre ego (-1.0, 10.2, 3.2) m; every camera of challenge_frame looks along ego +y from
# lidar (1, 0, 2): 10.2 m ahead, 2 m left, 1.2 m up -> u = 50 - 100 * 2 / 10.2,
# v = 40 - 100 * 1.2 / 10.2 with test_occ3d's intrinsic (f = 100, centre (50, 40))
CAR_VOXEL = (97, 125, 10)
CAR_PIXEL = (50 - 200 / 10.2, 40 - 120 / 10.2)  # (30.39, 28.24)
WIDTH, HEIGHT = 100, 80
HIDDEN_FREE = [(0, 0, z) for z in range(9)]


def frame_labels(token):
    """(semantics uint8, mask_camera uint8) of the fixture's frames.

    tok0: a car at CAR_VOXEL, sidewalk on 5 voxels, vegetation on 1; no camera sees the
    vegetation nor 9 free voxels. tok1: 3 cars, 2 pedestrians, every voxel seen."""
    semantics = np.full(OCC.grid_shape, FREE, dtype=np.uint8)
    mask = np.ones(OCC.grid_shape, dtype=np.uint8)
    if token == 'tok0':
        semantics[CAR_VOXEL] = CAR
        semantics[10, 10, 0:5] = SIDEWALK
        semantics[150, 60, 8] = VEGETATION
        mask[150, 60, 8] = 0
        for voxel in HIDDEN_FREE:
            mask[voxel] = 0
    else:
        semantics[120:123, 100, 2] = CAR
        semantics[90, 80:82, 3] = PEDESTRIAN
    return semantics, mask


def write_label(root, frame, **arrays):
    semantics, mask = frame_labels(frame['token'])
    labels = {**dict(semantics=semantics, mask_lidar=mask, mask_camera=mask), **arrays}
    path = root / frame['occ_gt_path']
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **labels)
    return str(path)


@pytest.fixture
def occ3d_root(tmp_path):
    """A nuScenes root of one scene with tok0 and tok1 (0.5 s apart), CVPR 2023 challenge
    infos `occ_infos_temporal_train.pkl` (both frames) and `..._val.pkl` (tok1)."""
    frames = [challenge_frame('tok0'), challenge_frame('tok1', prev='tok0')]
    frames[1]['timestamp'] += 500_000
    for frame in frames:
        token = frame['token']
        write_label(tmp_path, frame)
        for cam in OCC.camera_names:
            path = tmp_path / 'samples' / cam / f'{token}.jpg'
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8))
        lidar = tmp_path / 'samples' / 'LIDAR_TOP' / f'{token}.pcd.bin'
        lidar.parent.mkdir(parents=True, exist_ok=True)
        np.arange(15, dtype=np.float32).tofile(lidar)  # 3 points of 5 float32
    write_infos(tmp_path / 'occ_infos_temporal_train.pkl', frames)
    write_infos(tmp_path / 'occ_infos_temporal_val.pkl', frames[1:])
    return tmp_path


def run_tool(name, args, monkeypatch):
    """Exit code (0 when it returns) of tools/<name> run in this process."""
    monkeypatch.setattr(sys, 'argv', [name, *args])
    try:
        runpy.run_path(os.path.join(REPO_ROOT, 'tools', name), run_name='__main__')
    except SystemExit as exit_info:
        return exit_info.code
    return 0


def only_issue(report):
    """The one issue of a report (asserting there is exactly one)."""
    assert sum(report.counts.values()) == 1, report.to_dict()['issues']
    (issue,) = [i for issues in report.issues.values() for i in issues]
    return issue


def test_readers_give_occ3d_frames_labels_and_projections(occ3d_root):
    frames = read_frames(str(occ3d_root / 'occ_infos_temporal_train.pkl'), 'occ3d_nuscenes')
    assert [f['occ_gt_path'] for f in frames] == [
        'gts/scene-0061/tok0/labels.npz', 'gts/scene-0061/tok1/labels.npz']
    semantics, mask_camera = read_dense_label(frames[0], str(occ3d_root), OCC)
    assert semantics.dtype == np.uint8 and semantics[CAR_VOXEL] == CAR
    assert mask_camera.dtype == bool and mask_camera.sum() == VOXELS - 10
    grid2img = grid2img_matrices(frames[0], 'occ3d_nuscenes')
    assert grid2img.shape == (6, 4, 4)
    centre = np.array(CAR_VOXEL) * OCC.voxel_size + 0.2 + np.array(OCC.point_cloud_range[:3])
    assert np.allclose(centre, [-1.0, 10.2, 3.2])
    projected = grid2img[0] @ np.append(centre, 1.0)
    assert np.allclose(projected[:2] / projected[2], CAR_PIXEL)


def test_verify_passes_on_the_occ3d_layout(occ3d_root, monkeypatch, capsys):
    infos = str(occ3d_root / 'occ_infos_temporal_train.pkl')
    report = verify_infos(infos, str(occ3d_root), workers=2, lidar=True)  # recognised
    assert report.ok and report.info['dataset'] == 'occ3d_nuscenes'
    assert dict(report.checked) == {'scenes': 1, 'frames': 2, 'images': 12,
                                    'labelled_frames': 2, 'label_files': 2, 'point_clouds': 2}
    args = ['--dataset', 'occ3d_nuscenes', '--data-root', str(occ3d_root), '--infos', infos,
            '--with-lidar', '--workers', '2']
    assert run_tool('verify_dataset.py', args, monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.startswith('dataset: occ3d_nuscenes\n')
    assert ('checked: 1 scenes, 2 frames, 12 images, 2 labelled frames (2 label files), '
            '2 point clouds') in out
    assert 'labels.npz bad' in out and 'flow files bad' not in out  # Occ3D's checks only
    assert '\nOK (' in out


def test_verify_names_a_truncated_label_and_a_missing_image(occ3d_root, monkeypatch, capsys):
    label = occ3d_root / 'gts' / 'scene-0061' / 'tok1' / 'labels.npz'
    label.write_bytes(label.read_bytes()[:300])
    image = occ3d_root / 'samples' / 'CAM_BACK_LEFT' / 'tok0.jpg'
    image.unlink()
    args = ['--dataset', 'occ3d_nuscenes', '--data-root', str(occ3d_root), '--infos',
            str(occ3d_root / 'occ_infos_temporal_train.pkl'), '--workers', '2']
    assert run_tool('verify_dataset.py', args, monkeypatch) == 1
    out = capsys.readouterr().out
    counts = {line[:58].strip(): int(line.split()[-1]) for line in out.splitlines()
              if line[:58].strip() in {c.title for c in CHECKS.values()}}
    assert counts['images missing'] == 1 and counts[CHECKS['labels_npz_bad'].title] == 1
    assert sum(counts.values()) == 2
    assert f'{image} (token tok0): CAM_BACK_LEFT: file not found' in out
    assert f'cannot read Occ3D label {label}: BadZipFile' in out
    assert 'fix: extract the nuScenes camera archives (samples/CAM_*/)' in out
    assert 'fix: truncated or not the release\'s files: extract the Occ3D-nuScenes gts' in out
    assert 'FAILED: 2 problems' in out


def test_verify_label_contents_and_point_clouds(occ3d_root):
    infos, root = str(occ3d_root / 'occ_infos_temporal_val.pkl'), str(occ3d_root)
    frame = challenge_frame('tok1')
    semantics, _ = frame_labels('tok1')
    semantics[5, 5, 5] = 18
    path = write_label(occ3d_root, frame, semantics=semantics)
    issue = only_issue(verify_infos(infos, root, workers=1))
    assert (issue.check, issue.path) == ('labels_npz_bad', path)
    assert 'class 18 in `semantics`' in issue.reason
    write_label(occ3d_root, frame, semantics=frame_labels('tok1')[0].astype(np.int64))
    issue = only_issue(verify_infos(infos, root, workers=1))
    assert issue.reason == f'Occ3D label {path}: `semantics` is int64, expected uint8'
    mask = frame_labels('tok1')[1].astype(bool)  # bool masks load the same: accepted
    write_label(occ3d_root, frame, mask_lidar=mask, mask_camera=mask)
    assert verify_infos(infos, root, workers=1).ok
    os.remove(path)
    issue = only_issue(verify_infos(infos, root, workers=1, images=False))
    assert (issue.check, issue.path, issue.token) == ('label_missing', path, 'tok1')
    assert verify_infos(infos, root, workers=1, labels=False).ok

    lidar = occ3d_root / 'samples' / 'LIDAR_TOP' / 'tok1.pcd.bin'
    lidar.write_bytes(lidar.read_bytes()[:-4])  # 56 bytes: 2.8 points
    issue = only_issue(verify_infos(infos, root, workers=1, labels=False, lidar=True))
    assert (issue.check, issue.path) == ('lidar_unreadable', str(lidar))
    assert 'truncated: 56 bytes' in issue.reason
    lidar.unlink()
    issue = only_issue(verify_infos(infos, root, workers=1, labels=False, lidar=True))
    assert (issue.check, issue.reason) == ('lidar_missing', 'file not found')


def test_verify_reports_an_unreadable_frame_and_checks_the_others(occ3d_root, monkeypatch):
    broken = challenge_frame('tok0')
    del broken['cams']['CAM_BACK']
    infos = write_infos(occ3d_root / 'broken.pkl', [broken, challenge_frame('tok1')])
    report = verify_infos(infos, str(occ3d_root), workers=1)
    issue = only_issue(report)
    assert (issue.check, issue.path, issue.token) == ('frame_bad_metadata', infos, 'tok0')
    assert 'CAM_BACK' in issue.reason
    assert report.checked['frames'] == 2 and report.checked['images'] == 6
    usage = ['--dataset', 'occ3d_nuscenes', '--data-root', str(occ3d_root)]  # no --infos
    assert run_tool('verify_dataset.py', usage, monkeypatch) == 2


def test_dataset_stats_per_split_by_hand(occ3d_root, monkeypatch, capsys):
    """train = tok0 + tok1: car 1 + 3, pedestrian 2, sidewalk 5, vegetation 1, free the rest
    of 2 grids; tok0's cameras miss the vegetation and 9 free voxels. val = tok1."""
    out = occ3d_root / 'stats.json'
    args = ['--dataset', 'occ3d_nuscenes', '--data-root', str(occ3d_root), '--infos',
            str(occ3d_root / 'occ_infos_temporal_train.pkl'),
            str(occ3d_root / 'occ_infos_temporal_val.pkl'), '--out', str(out), '--workers', '1']
    assert run_tool('dataset_stats.py', args, monkeypatch) == 0
    report = json.loads(out.read_text())
    train, val = (report['groups'][f'occ_infos_temporal_{s}'] for s in ('train', 'val'))
    assert (train['scenes'], train['frames'], train['frames_masked']) == (1, 2, 2)
    counts = dict.fromkeys(report['class_names'], 0)
    counts.update(car=4, pedestrian=2, sidewalk=5, vegetation=1, free=2 * VOXELS - 12)
    assert train['voxel_counts'] == counts
    counts.update(vegetation=0, free=2 * VOXELS - 12 - 9)
    assert train['voxel_counts_masked'] == counts
    assert train['voxels_total_masked'] == 2 * VOXELS - 10
    assert train['frequencies']['car'] == pytest.approx(4 / (2 * VOXELS))
    assert train['frequencies_masked']['car'] == pytest.approx(4 / (2 * VOXELS - 10))
    assert train['class_weights']['sidewalk'] == pytest.approx(
        1 / np.log(1.02 + 5 / (2 * VOXELS)))
    assert train['class_weights']['vegetation'] > 0 == train['class_weights_masked'][
        'vegetation']
    assert (val['voxel_counts']['car'], val['voxel_counts']['free']) == (3, VOXELS - 5)
    assert val['voxel_counts_masked'] == val['voxel_counts']
    printed = capsys.readouterr().out
    assert 'occ_infos_temporal_val: 1 scenes, 1 frames, 1 labelled, 1 counted' in printed
    split = ['--dataset', 'occ3d_nuscenes', '--data-root', str(occ3d_root), '--split', 'mini']
    assert run_tool('dataset_stats.py', split, monkeypatch) == 2


def test_visualize_renders_occ3d_labels_and_projects_the_grid(occ3d_root, monkeypatch):
    preds, renders = occ3d_root / 'preds', occ3d_root / 'renders'
    preds.mkdir()
    prediction = np.full(OCC.grid_shape, FREE, dtype=np.uint8)
    prediction[CAR_VOXEL] = CAR
    for token in ('tok0', 'tok1'):
        np.savez(preds / f'{token}.npz', semantics=prediction)
    args = ['--dataset', 'occ3d_nuscenes', '--data-root', str(occ3d_root), '--infos',
            str(occ3d_root / 'occ_infos_temporal_train.pkl'), '--pred-dir', str(preds),
            '--out-dir', str(renders), '--num-frames', '2', '--scale', '1', '--cameras']
    assert run_tool('visualize.py', args, monkeypatch) == 0
    assert sorted(os.listdir(renders)) == [f'scene-0061_{t}{s}.png' for t in ('tok0', 'tok1')
                                           for s in ('', '_cameras')]  # no flow for Occ3D
    topdown = cv2.imread(str(renders / 'scene-0061_tok0.png'))[..., ::-1]
    top, left = 20 + 40 + 26, 20  # margin, title line, panel name line
    expected = np.rint(shade_by_height(np.array(OCC.palette[VEGETATION], float), 8, 16))
    np.testing.assert_array_equal(topdown[top + 200 - 1 - 150, left + 200 - 1 - 60], expected)
    cameras = cv2.imread(str(renders / 'scene-0061_tok0_cameras.png'))[..., ::-1]
    tile_w, tile_h = 480, 480 * HEIGHT // WIDTH  # 6 tiles, 2 rows of 3
    assert cameras.shape == (2 * tile_h, 3 * tile_w, 3)
    # the car's dot at CAR_PIXEL (radius 2, alpha 0.6 over grey 128) in every tile, since
    # the fixture's cameras share one calibration; grey elsewhere
    dot = 0.4 * 128 + 0.6 * np.array(OCC.palette[CAR])
    u, v = (int(c) + 0.5 for c in CAR_PIXEL)
    scale = tile_w / WIDTH
    for row in range(2):
        for col in range(3):
            y, x = row * tile_h, col * tile_w
            pixel = cameras[y + int(v * scale), x + int(u * scale)]
            np.testing.assert_allclose(pixel, dot, atol=2)
            np.testing.assert_allclose(cameras[y + tile_h - 20, x + tile_w - 20], 128, atol=2)
