"""The restricted metadata unpickler and pickle error messages."""
import os
import pickle

import numpy as np
import pytest

from occnet.datasets.infos import DataError, UnsafePickleError, load_pickle, restricted_loads


class RunsShell:
    """What a crafted pickle looks like: unpickling it would call os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class CallsEval:
    def __reduce__(self):
        return eval, ('1 + 1',)


def test_refuses_a_pickle_that_would_call_os_system(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps([{'token': 'ab'}, RunsShell(marker)], protocol=4))
    with pytest.raises(UnsafePickleError, match=f'{path} is not an OpenScene metadata pickle: '
                       r'refusing (posix|os)\.system'):
        load_pickle(str(path))
    assert not marker.exists()
    assert pickle.loads(path.read_bytes()) is not None and marker.exists()  # it really would


@pytest.mark.parametrize('payload', [CallsEval(), np.ma.masked_array([1, 2])])
def test_refuses_other_globals(payload):
    with pytest.raises(UnsafePickleError, match='refusing'):
        restricted_loads(pickle.dumps(payload))


class Reduce:
    """Pickles as `func(*args)` then BUILD with `state`: how a crafted pickle is written."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args,
                                                                   self.state)


def forged_dtype(args, state):
    return Reduce(np.dtype, args, state)


def array_with_state(dtype, raw):
    from numpy._core.multiarray import _reconstruct
    return Reduce(_reconstruct, (np.ndarray, (0,), b'b'), (1, (1,), dtype, False, raw))


@pytest.mark.parametrize('payload,message', [
    # np.ndarray(shape, object dtype, raw bytes): pointers made of attacker bytes
    (Reduce(np.ndarray, ((2,), np.dtype('O'), b'A' * 16)), 'direct numpy.ndarray'),
    # an object dtype whose flags say "no object pointers", filled from raw bytes
    (array_with_state(forged_dtype(('O8', False, True), (3, '|', None, None, None, -1, -1, 0)),
                      b'A' * 8), 'forged or structured dtype'),
    # a field read from 1 MB past the array's memory
    (array_with_state(forged_dtype(('V8', False, True), (3, '|', None, ('a',), {
        'a': (np.dtype('u8'), 2**20)}, 8, 1, 0)), b'A' * 8), 'forged or structured dtype'),
])
def test_refuses_arrays_that_would_read_arbitrary_memory(payload, message):
    with pytest.raises(UnsafePickleError, match=message):
        restricted_loads(pickle.dumps(payload, protocol=2))


@pytest.mark.parametrize('protocol', [2, 4, 5])
def test_admits_numpy_arrays_scalars_and_builtins(protocol):
    frame = {'token': 'ab12', 'can_bus': np.arange(18, dtype=np.float64),
             'driving_command': np.eye(4, dtype=np.int64)[1], 'valid': np.array([True, False]),
             'gt_names': np.array(['vehicle', 'pedestrian'], dtype='<U14'),
             'tokens': np.array(['a', None], dtype=object), 'yaw': np.float32(0.5),
             'count': np.int64(3), 'lights': [(12, True)], 'ids': {'a', 'b'},
             'raw': b'\x00\xff', 'prev': None, 'rotation': (1.0, 0.0, 0.0, 0.0)}
    loaded = restricted_loads(pickle.dumps([frame], protocol=protocol))[0]
    assert loaded.keys() == frame.keys()
    assert type(loaded['can_bus']) is np.ndarray and type(loaded['tokens']) is np.ndarray
    for key, value in frame.items():
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype and loaded[key].tolist() == value.tolist()
        else:
            assert loaded[key] == value and type(loaded[key]) is type(value)


def test_admits_numpy1_module_names():
    data = pickle.dumps({'a': np.arange(3.0), 's': np.float64(2.0)}, protocol=2)
    assert b'numpy._core.multiarray' in data
    old = data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
    loaded = restricted_loads(old)
    assert loaded['a'].tolist() == [0.0, 1.0, 2.0] and loaded['s'] == 2.0


def test_truncated_empty_and_missing_pickles_name_the_file(tmp_path):
    path = tmp_path / 'log.pkl'
    data = pickle.dumps([{'token': str(i), 'x': np.zeros(10)} for i in range(50)], protocol=4)
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match=f'cannot read metadata pickle {path}.*truncated'):
        load_pickle(str(path))
    path.write_bytes(b'')
    with pytest.raises(DataError, match=f'cannot read metadata pickle {path}'):
        load_pickle(str(path))
    path.write_bytes(b'this is not a pickle at all')
    with pytest.raises(DataError, match=f'cannot read metadata pickle {path}'):
        load_pickle(str(path))
    with pytest.raises(DataError, match='metadata file not found: .*nope.pkl'):
        load_pickle(str(tmp_path / 'nope.pkl'))
