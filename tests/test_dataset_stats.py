"""occnet.datasets.stats and tools/dataset_stats.py on hand-made labels and the tiny root."""
import json
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from occnet.datasets.infos import DataError, load_pickle
from occnet.datasets.stats import (class_weights, evenly_spaced, frame_class_counts,
                                   group_stats, split_frames, stat_class_names)
from occnet.descriptions import OPENSCENE

CLASS_NAMES, FREE_INDEX = OPENSCENE.class_names, OPENSCENE.free_index
GRID_SHAPE, NUM_CLASSES = OPENSCENE.grid_shape, OPENSCENE.num_classes
VOXELS = int(np.prod(GRID_SHAPE))
ZERO_CLASSES = (1, 2, 3, 4, 5, 6, 8, 9)


def index1d(x, y, z):
    return z * GRID_SHAPE[0] * GRID_SHAPE[1] + y * GRID_SHAPE[0] + x


@pytest.fixture
def hand_root(tmp_path):
    """Frame A: 3 vehicle voxels and 1 background voxel, an invalid file hiding 1 vehicle
    and 5 free voxels; frame B: 2 pedestrians, no invalid file; frame C: unlabelled."""
    labels = tmp_path / 'labels'
    labels.mkdir()
    occ_a = np.array([[index1d(0, 0, 0), 0], [index1d(1, 0, 0), 0], [index1d(2, 0, 0), 0],
                      [index1d(5, 5, 5), 10]], dtype=np.int64)
    occ_b = np.array([[index1d(9, 9, 1), 7], [index1d(9, 8, 1), 7]], dtype=np.int64)
    hidden = [index1d(0, 0, 0)] + [index1d(100, 100, z) for z in range(5)]
    np.save(labels / 'a_occ.npy', occ_a)
    np.save(labels / 'b_occ.npy', occ_b)
    np.save(labels / 'a_invalid.npy', np.array(hidden, dtype=np.int64))
    frames = [
        dict(token='a', log_name='log1', scene_token='s1', occ_gt_final_path='labels/a_occ.npy',
             occ_invalid_path='labels/a_invalid.npy'),
        dict(token='b', log_name='log1', scene_token='s2', occ_gt_final_path='labels/b_occ.npy'),
        dict(token='c', log_name='log2', scene_token='s3', occ_gt_final_path=None)]
    with open(tmp_path / 'hand_infos.pkl', 'wb') as f:
        pickle.dump(frames, f, protocol=4)
    return tmp_path, frames


def sparse_counts(path):
    """Voxels per class of a sparse label file, counted from its rows (free = the rest)."""
    occ = np.load(path)
    _, first = np.unique(occ[:, 0], return_index=True)
    counts = np.bincount(occ[first, 1], minlength=NUM_CLASSES)
    counts[FREE_INDEX] = VOXELS - len(first)
    return counts


def test_class_names_put_free_at_its_index():
    names = stat_class_names()
    assert len(names) == NUM_CLASSES
    assert names[FREE_INDEX] == 'free'
    assert names[:len(CLASS_NAMES)] == CLASS_NAMES


def test_counts_frequencies_weights_of_hand_made_labels(hand_root):
    root, frames = hand_root
    stats = group_stats(frames, str(root))
    assert (stats['logs'], stats['scenes'], stats['frames']) == (2, 3, 3)
    assert (stats['labelled_frames'], stats['frames_counted'], stats['frames_masked']) == (2, 2, 1)
    expected = [0] * NUM_CLASSES
    expected[0], expected[7], expected[10], expected[FREE_INDEX] = 3, 2, 1, 2 * VOXELS - 6
    assert stats['voxel_counts_list'] == expected
    assert stats['voxel_counts']['vehicle'] == 3 and stats['voxel_counts']['free'] == 2 * VOXELS - 6
    assert stats['voxels_total'] == 2 * VOXELS
    assert stats['frequencies']['pedestrian'] == pytest.approx(2 / (2 * VOXELS))
    assert stats['frequencies_list'][FREE_INDEX] == pytest.approx((2 * VOXELS - 6) / (2 * VOXELS))

    weights = stats['class_weights_list']
    assert weights[0] == pytest.approx(1 / math.log(1.02 + 3 / (2 * VOXELS)))
    assert weights[10] > weights[7] > weights[0] > weights[FREE_INDEX] > 0
    assert all(weights[c] == 0 for c in ZERO_CLASSES)
    assert stats['class_weights']['background'] == weights[10]

    masked = [0] * NUM_CLASSES
    masked[0], masked[10], masked[FREE_INDEX] = 2, 1, VOXELS - 4 - 5
    assert stats['voxel_counts_list_masked'] == masked
    assert stats['voxels_total_masked'] == VOXELS - 6
    assert stats['frequencies_masked']['vehicle'] == pytest.approx(2 / (VOXELS - 6))


def test_without_invalid_files_there_are_no_masked_keys(hand_root):
    root, frames = hand_root
    stats = group_stats(frames[1:], str(root))
    assert stats['frames_masked'] == 0 and 'voxel_counts_masked' not in stats


def test_max_frames_takes_evenly_spaced_frames(hand_root):
    assert evenly_spaced(list(range(10)), 3) == [0, 4, 9]  # positions 0, 4.5 -> 4, 9
    assert evenly_spaced(list(range(4)), 10) == [0, 1, 2, 3]
    root, frames = hand_root
    stats = group_stats(frames, str(root), max_frames=1)
    assert (stats['frames_counted'], stats['labelled_frames']) == (1, 2)
    assert stats['voxel_counts']['vehicle'] == 3 and stats['voxel_counts']['pedestrian'] == 0


def test_class_weights_formula():
    counts = np.array([0, 10, 90])
    np.testing.assert_allclose(class_weights(counts),
                               [0, 1 / np.log(1.02 + 0.1), 1 / np.log(1.02 + 0.9)])


def test_bad_label_raises_with_its_path_from_a_worker(hand_root):
    root, frames = hand_root
    np.save(root / 'labels' / 'b_occ.npy', np.zeros(3, dtype=np.int64))
    with pytest.raises(DataError, match='labels/b_occ.npy'):
        group_stats(frames, str(root), workers=2)


def test_split_frames_counts_match_the_label_files(tiny_data_root):
    frames = split_frames(str(tiny_data_root), 'mini')
    stats = group_stats(frames, str(tiny_data_root), workers=2)
    assert (stats['logs'], stats['scenes'], stats['frames']) == (2, 4, 12)
    assert stats['labelled_frames'] == stats['frames_counted'] == 12
    expected = sum(sparse_counts(tiny_data_root / f['occ_gt_final_path']) for f in frames)
    assert stats['voxel_counts_list'] == expected.tolist()
    masked_frame = next(f for f in frames if f['occ_invalid_path'])
    counts, counts_masked = frame_class_counts(str(tiny_data_root), masked_frame)
    label_path = tiny_data_root / masked_frame['occ_gt_final_path']
    assert counts.tolist() == sparse_counts(label_path).tolist()
    hidden = len(np.unique(np.load(tiny_data_root / masked_frame['occ_invalid_path'])))
    assert counts_masked.sum() == VOXELS - hidden
    assert (counts_masked <= counts).all()


def run_tool(*args):
    return subprocess.run([sys.executable, 'tools/dataset_stats.py', *args], cwd=REPO_ROOT,
                          capture_output=True, text=True)


def test_cli_writes_json_per_infos_file(tiny_data_root, tmp_path):
    root = tiny_data_root
    out = tmp_path / 'stats.json'
    result = run_tool('--data-root', str(root), '--infos', str(root / 'openscene_mini_train.pkl'),
                      str(root / 'openscene_mini_val.pkl'), '--out', str(out), '--workers', '2',
                      '--max-frames', '4')
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report['class_names'] == list(stat_class_names('openscene'))
    assert '1 / ln(1.02 + f_c)' in report['class_weight_formula']
    assert set(report['groups']) == {'openscene_mini_train', 'openscene_mini_val'}
    train = report['groups']['openscene_mini_train']
    frames = load_pickle(str(root / 'openscene_mini_train.pkl'))
    assert (train['logs'], train['frames'], train['frames_counted']) == (1, len(frames), 4)
    counted = evenly_spaced(frames, 4)
    expected = sum(sparse_counts(root / f['occ_gt_final_path']) for f in counted)
    assert train['voxel_counts_list'] == expected.tolist()
    assert 'pedestrian' in result.stdout and 'freq %' in result.stdout


def test_cli_names_a_bad_label_file(hand_root):
    root, _ = hand_root
    np.save(root / 'labels' / 'a_occ.npy', np.zeros((2, 3), dtype=np.int64))
    result = run_tool('--data-root', str(root), '--infos', str(root / 'hand_infos.pkl'),
                      '--workers', '1')
    assert result.returncode != 0
    assert 'error:' in result.stderr and str(root / 'labels' / 'a_occ.npy') in result.stderr
