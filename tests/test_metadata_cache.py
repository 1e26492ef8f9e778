"""The column file of parsed frames (datasets/columns.py) and the dataset's metadata cache
beside its infos (datasets/metadata_cache.py)."""
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from occnet.datasets.columns import ColumnFileError, ColumnFrames, write_columns
from occnet.datasets import metadata_cache, openscene_dataset
from occnet.datasets.metadata_cache import cache_path, code_hash
from occnet.registry import DATASETS

FRAMES = [
    dict(token='a1', log_name=None, frame_idx=3, timestamp=1_620_000_000_000_001, speed=1.5,
         moving=True, pose=np.arange(16, dtype=np.float64).reshape(4, 4),
         ids=np.array([1, 2, 3], dtype=np.int32), paths=['x/ä.jpg', 'y.jpg'], label='l/0.npy'),
    dict(token='b22', log_name='log-b', frame_idx=None, timestamp=-7, speed=-0.25,
         moving=False, pose=np.eye(4), ids=np.array([4, 5, 6], dtype=np.int32),
         paths=['', 'z/w.jpg'], label=None),
]


def assert_frames_equal(got, want):
    assert list(got) == list(want)
    for key, value in want.items():
        assert type(got[key]) is type(value), key
        if isinstance(value, np.ndarray):
            assert got[key].dtype == value.dtype and np.array_equal(got[key], value), key
        else:
            assert got[key] == value, key


def test_column_file_gives_back_each_frame_with_its_types(tmp_path):
    path = str(tmp_path / 'frames.cols')
    write_columns(path, FRAMES, dict(note='n'), tables=dict(prev=np.array([-1, 0])))
    frames = ColumnFrames(path)
    assert len(frames) == 2 and frames.meta == dict(note='n')
    for i in (0, 1):
        assert_frames_equal(frames[i], FRAMES[i])
    assert_frames_equal(frames[-1], FRAMES[1])
    with pytest.raises(IndexError):
        frames[2]
    # columns and tables are mapped, read-only views
    assert np.array_equal(frames.column('timestamp'), [1_620_000_000_000_001, -7])
    assert frames.column('pose').shape == (2, 4, 4)
    assert list(frames.table('prev')) == [-1, 0]
    with pytest.raises(ValueError):
        frames.column('pose')[0, 0, 0] = 1.0
    # a frame handed out is a copy: editing it leaves the file's frames as they were
    frame = frames[0]
    frame['pose'][0, 0] = 99.0
    frame['paths'].append('q')
    assert_frames_equal(frames[0], FRAMES[0])


def test_column_file_refuses_what_it_cannot_store_naming_the_key(tmp_path):
    ragged = [dict(FRAMES[0]), dict(FRAMES[1], pose=np.eye(3))]
    with pytest.raises(TypeError, match='pose'):
        write_columns(str(tmp_path / 'a.cols'), ragged, {})
    nested = [dict(FRAMES[0], extra=dict(a=1))]
    with pytest.raises(TypeError, match='extra'):
        write_columns(str(tmp_path / 'b.cols'), nested, {})
    assert not os.listdir(tmp_path)  # nothing half-written is left


def test_truncated_or_foreign_column_file_is_refused_by_name(tmp_path):
    path = str(tmp_path / 'frames.cols')
    write_columns(path, FRAMES, {})
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) - 10)
    with pytest.raises(ColumnFileError, match='frames.cols.*truncated'):
        ColumnFrames(path)
    with open(path, 'wb') as f:
        pickle.dump(FRAMES, f)
    with pytest.raises(ColumnFileError, match='not an occnet column file'):
        ColumnFrames(path)


def build(root, split='train', **kwargs):
    cfg = dict(type='OpenSceneOccDataset', data_root=str(root),
               ann_file=str(root / f'openscene_mini_{split}.pkl'), pipeline=[])
    return DATASETS.build({**cfg, **kwargs})


def caches(root):
    return sorted(name for name in os.listdir(root) if name.endswith('.cols'))


@pytest.fixture
def data_root(tiny_data_root, tmp_path):
    """A private copy of the tiny data root's infos (the sensor folders linked)."""
    root = tmp_path / 'root'
    root.mkdir()
    for name in os.listdir(tiny_data_root):
        source = tiny_data_root / name
        if name.endswith('.pkl'):
            shutil.copy(source, root / name)
        elif not name.endswith(('.cols', '.lock')):
            os.symlink(source, root / name)
    return root


@pytest.mark.parametrize('test_mode', [False, True])
def test_mapped_frames_equal_the_frames_parsed_in_memory(data_root, test_mode):
    split = 'val' if test_mode else 'train'
    parsed = build(data_root, split, test_mode=test_mode, metadata_cache=False)
    assert parsed.frames is None and not caches(data_root)
    mapped = build(data_root, split, test_mode=test_mode, queue_length=3)
    assert isinstance(mapped.frames, ColumnFrames)
    assert caches(data_root) == [c for c in caches(data_root) if c.startswith(
        f'openscene_mini_{split}.pkl.')] and len(caches(data_root)) == 1
    assert len(mapped) == len(parsed) > 4
    for i in range(len(parsed)):
        assert_frames_equal(mapped.get_data_info(i), parsed.get_data_info(i))
    assert np.array_equal(mapped.prev_indices, parsed.prev_indices)
    assert np.array_equal(mapped.scene_ids, parsed.scene_ids)
    assert (mapped.prev_indices >= 0).any() and len(set(mapped.scene_ids.tolist())) > 1
    if test_mode:
        assert np.array_equal(mapped.next_indices, parsed.next_indices)
        assert np.array_equal(mapped.lidar2globals, parsed.lidar2globals)
        assert np.array_equal(mapped.ray_origins(3), parsed.ray_origins(3))


def test_a_second_dataset_maps_the_cache_without_reading_the_infos(data_root, monkeypatch):
    first = build(data_root)
    cls = type(first)
    monkeypatch.setattr(cls, 'read_infos', lambda self: pytest.fail('infos parsed again'))
    second = build(data_root)
    assert_frames_equal(second.get_data_info(1), first.get_data_info(1))
    # another setting that shapes the frames is another cache file, parsed from the infos
    with pytest.raises(pytest.fail.Exception, match='infos parsed again'):
        build(data_root, max_prev_gap_s=0.6)


def test_changed_infos_rebuild_the_cache(data_root):
    before = build(data_root)
    path = data_root / 'openscene_mini_train.pkl'
    with open(path, 'rb') as f:
        infos = pickle.load(f)
    infos[0]['can_bus'] = np.full(18, 7.0)  # same size on disk, new content
    with open(path, 'wb') as f:
        pickle.dump(infos, f)
    after = build(data_root)
    token = infos[0]['token']
    index = next(i for i in range(len(after)) if after.get_data_info(i)['token'] == token)
    assert np.array_equal(after.get_data_info(index)['can_bus'], np.full(18, 7.0))
    assert not np.array_equal(before.get_data_info(index)['can_bus'], np.full(18, 7.0))
    assert len(caches(data_root)) == 1  # replaced in place, not piled up


def test_a_truncated_cache_is_rebuilt(data_root):
    first = build(data_root)
    path, count = first.frames.path, len(first)
    last = first.get_data_info(count - 1)
    del first  # its mapping must not be read once the file is cut (that is a SIGBUS)
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) // 2)  # a write cut off
    second = build(data_root)
    assert isinstance(second.frames, ColumnFrames) and len(second) == count
    assert ColumnFrames(path).rows == count
    assert_frames_equal(second.get_data_info(count - 1), last)


def test_lazy_init_dataset_maps_on_first_use(data_root):
    parsed = build(data_root, metadata_cache=False)
    lazy = build(data_root, lazy_init=True)
    assert lazy.frames is None
    assert len(lazy) == len(parsed) and isinstance(lazy.frames, ColumnFrames)
    lazy = build(data_root, lazy_init=True)
    assert_frames_equal(lazy.get_data_info(3), parsed.get_data_info(3))


def test_frames_the_file_cannot_hold_are_used_from_memory_parsed_once(data_root, monkeypatch):
    path = data_root / 'openscene_mini_train.pkl'
    with open(path, 'rb') as f:
        infos = pickle.load(f)
    infos[0]['frame_idx'] = 1.0  # the others are int: no column kind holds both
    with open(path, 'wb') as f:
        pickle.dump(infos, f)
    parsed = build(data_root, metadata_cache=False)
    cls = type(parsed)
    reads = []
    real = cls.read_infos
    monkeypatch.setattr(cls, 'read_infos', lambda self: reads.append(1) or real(self))
    messages = logged(monkeypatch, metadata_cache)
    dataset = build(data_root)
    assert reads == [1] and dataset.frames is None and not caches(data_root)
    assert any('cannot write the metadata cache' in m and 'frame_idx' in m for m in messages)
    assert len(dataset) == len(parsed)
    for i in range(len(parsed)):
        assert_frames_equal(dataset.get_data_info(i), parsed.get_data_info(i))


def test_another_occnet_version_gets_its_own_cache_file(data_root, monkeypatch):
    first = build(data_root, data_root=data_root)  # a pathlib.Path data root works too
    monkeypatch.setattr(metadata_cache, 'code_hash', lambda cls: 'another-version')
    second = build(data_root)
    assert len(caches(data_root)) == 2 and second.frames.path != first.frames.path
    assert_frames_equal(first.get_data_info(0), second.get_data_info(0))  # both still map


def test_a_pickled_column_file_maps_again_in_the_receiver(data_root):
    frames = build(data_root).frames
    copy = pickle.loads(pickle.dumps(frames))
    assert len(pickle.dumps(frames)) < 1000  # the path, not the arrays
    assert not copy.column('timestamp').flags.writeable  # mapped, not an unpickled copy
    assert_frames_equal(copy[2], frames[2])


def logged(monkeypatch, *modules):
    """The messages print_log gets in `modules` from now on (mmengine's logger keeps the
    stdout it was made with, so capsys does not see it in a long run)."""
    messages = []
    for module in modules:
        monkeypatch.setattr(module, 'print_log', lambda msg, *a, **k: messages.append(msg))
    return messages


def test_a_cache_that_cannot_be_written_parses_in_memory_with_a_warning(data_root,
                                                                        monkeypatch):
    # a lock path that cannot be opened stands for a read-only folder (this also holds when
    # the tests run as root, who may write into read-only folders)
    parsed = build(data_root, metadata_cache=False)
    os.mkdir(cache_path(parsed.ann_file, parsed.settings(), code_hash(type(parsed))) + '.lock')
    messages = logged(monkeypatch, metadata_cache)
    dataset = build(data_root)
    assert dataset.frames is None and len(dataset) == len(parsed) > 4
    assert_frames_equal(dataset.get_data_info(2), parsed.get_data_info(2))
    assert len(messages) == 1 and 'cannot cache the parsed metadata' in messages[0]
    assert not caches(data_root)


def test_bad_frames_left_out_are_reported_again_from_the_cache(data_root, monkeypatch):
    path = data_root / 'openscene_mini_train.pkl'
    with open(path, 'rb') as f:
        infos = pickle.load(f)
    infos[1]['can_bus'] = np.zeros(5)
    with open(path, 'wb') as f:
        pickle.dump(infos, f)
    with pytest.raises(Exception, match='can_bus has shape'):
        build(data_root)
    assert not caches(data_root)
    first = build(data_root, skip_bad_frames=True)
    messages = logged(monkeypatch, metadata_cache, openscene_dataset)
    second = build(data_root, skip_bad_frames=True)
    assert isinstance(second.frames, ColumnFrames)
    assert len(second) == len(first) == len(infos) - 1
    assert not any('building' in m for m in messages)
    assert any('left out 1 frames with bad metadata' in m and 'can_bus has shape (5,)' in m
               for m in messages), messages


BUILD_ONE = """
import sys
from mmengine.registry import init_default_scope
import occnet.datasets  # noqa: F401
from occnet.registry import DATASETS
init_default_scope('occnet')
root = sys.argv[1]
dataset = DATASETS.build(dict(type='OpenSceneOccDataset', data_root=root,
                              ann_file=root + '/openscene_mini_train.pkl', pipeline=[]))
print('frames', len(dataset), dataset.get_data_info(0)['token'])
"""


def test_ranks_starting_together_build_the_cache_once(data_root):
    procs = [subprocess.Popen([sys.executable, '-c', BUILD_ONE, str(data_root)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sum(out.count('building the metadata cache') for out in outputs) == 1, outputs
    assert len({out.strip().splitlines()[-1] for out in outputs}) == 1
    assert len(caches(data_root)) == 1


def test_data_scale_benchmark_starts_ranks_that_build_once_then_map(tmp_path):
    # benchmarks/data_scale.py --ranks at a tiny scale: its last line is the JSON the docs
    # quote, the cold run's ranks share one build and the warm run's ranks only map
    import json
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(repo, 'benchmarks', 'data_scale.py'),
                           '--work-dir', str(tmp_path), '--logs', '2', '--frames', '40',
                           '--ranks', '2', '--baseline-ranks', '1'],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for run, ranks in (('cold', 2), ('warm', 2), ('baseline', 1)):
        assert len(result[run]['per_rank']) == ranks
        assert all(r['frames'] == result['warm']['per_rank'][0]['frames'] > 0
                   for r in result[run]['per_rank'])
        assert all(r['mapped'] == (run != 'baseline') for r in result[run]['per_rank'])
    assert proc.stderr.count('building the metadata cache') == 1  # cold: one rank builds
    assert result['dataset_init_s'] == result['warm']['dataset_init_s'] >= 0
    assert result['private_mb_per_rank'] == max(
        r['init_growth_mb'] for r in result['warm']['per_rank'])
