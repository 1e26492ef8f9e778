"""Reading metadata pickles safely and resolving the paths they hold."""
import io
import os
import pickle
import threading
from collections import OrderedDict

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as np_multiarray, numeric as np_numeric
except ImportError:  # numpy 1
    from numpy.core import multiarray as np_multiarray, numeric as np_numeric

VERIFY_HINT = 'run tools/verify_dataset.py on the data root'

# The only globals an OpenScene metadata pickle needs: numpy arrays, dtypes and scalars (numpy 1
# and numpy 2 module names), and plain builtin containers. `_codecs.encode` is how protocol-2
# pickles spell a bytes literal. The numpy entries are wrapped (see RestrictedUnpickler).
_NUMPY_CORE = ('_reconstruct', 'scalar', '_frombuffer')
ALLOWED_GLOBALS = frozenset({
    *((module, name) for module in ('numpy.core.multiarray', 'numpy._core.multiarray',
                                    'numpy.core.numeric', 'numpy._core.numeric')
      for name in _NUMPY_CORE),
    ('numpy', 'ndarray'),
    ('numpy', 'dtype'),
    *((module, name) for module in ('builtins', '__builtin__')
      for name in ('set', 'frozenset', 'list', 'dict', 'tuple', 'int', 'float', 'complex',
                   'str', 'bytes', 'bool')),
    ('collections', 'OrderedDict'),
    ('_codecs', 'encode'),
})


class DataError(RuntimeError):
    """Bad or missing input data; the message names the file/frame and the fix."""


class MissingFileError(DataError, FileNotFoundError):
    """An input file the metadata points to does not exist."""


class UnsafePickleError(DataError):
    """A pickle asked for a global outside ALLOWED_GLOBALS (it could run code)."""


def check_dtype(dtype):
    """Refuse a dtype whose pickled state was forged: numpy builds a dtype from its pickle
    state without checking it, and a dtype that hides object pointers or lies about its
    field offsets makes numpy read arbitrary memory. OpenScene needs plain dtypes only: no
    fields, no sub-arrays, and the flags and size of the dtype its type string names."""
    checked = getattr(_LOAD_STATE, 'dtypes', None)
    if checked is not None and id(dtype) in checked:
        return dtype
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f'refusing a non-dtype {type(dtype).__name__} as a dtype')
    canonical = np.dtype(dtype.str)
    if (dtype.names is not None or dtype.subdtype is not None or
            (dtype.flags, dtype.itemsize) != (canonical.flags, canonical.itemsize)):
        raise UnsafePickleError(f'refusing a forged or structured dtype {dtype!r}')
    if checked is not None:
        checked[id(dtype)] = dtype  # the reference keeps the id from being reused
    return dtype


_LOAD_STATE = threading.local()  # dtypes already checked during the current load


class _ArrayClass:
    """What the pickle gets for `numpy.ndarray`: usable only as _reconstruct's first argument,
    so a pickle cannot call the ndarray constructor on raw bytes itself."""

    def __new__(cls, *args, **kwargs):
        raise UnsafePickleError('refusing a direct numpy.ndarray(...) call')


class _CheckedArray(np.ndarray):
    """An array under construction: its pickled state is checked before numpy reads it.
    RestrictedUnpickler turns every one back into a plain ndarray after loading."""

    def __setstate__(self, state, _set_state=np.ndarray.__setstate__):
        if type(state) is not tuple or len(state) not in (4, 5):
            raise UnsafePickleError('refusing an ndarray state of unexpected form')
        checked = getattr(_LOAD_STATE, 'dtypes', None)
        if checked is None or id(state[-3]) not in checked:
            check_dtype(state[-3])
        _set_state(self, state)


def _reconstruct(cls, shape, dtype):
    if cls is not _ArrayClass:
        raise UnsafePickleError(f'refusing _reconstruct of {cls!r}')
    return np_multiarray._reconstruct(_CheckedArray, shape, dtype)


def _scalar(dtype, *args):
    return np_multiarray.scalar(check_dtype(dtype), *args)


def _frombuffer(buffer, dtype, shape, order):
    return np_numeric._frombuffer(buffer, check_dtype(dtype), shape, order)


_NUMPY_WRAPPERS = {'_reconstruct': _reconstruct, 'scalar': _scalar,
                   '_frombuffer': _frombuffer, 'ndarray': _ArrayClass, 'dtype': np.dtype}


def _plain(obj, seen):
    """`obj` with every _CheckedArray replaced by a plain ndarray view, in place for lists
    and dicts (object arrays and tuples included); leaves are not visited one by one."""
    kind = type(obj)
    if kind is _CheckedArray:
        array = obj.view(np.ndarray)
        if array.dtype == object:
            flat = array.reshape(-1)
            for i, item in enumerate(flat):
                if type(item) in _NESTED:
                    flat[i] = _plain(item, seen)
        return array
    if id(obj) in seen:
        return obj
    seen.add(id(obj))
    if kind is tuple:
        return tuple(_plain(item, seen) if type(item) in _NESTED else item for item in obj)
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for key, value in [(k, v) for k, v in items if type(v) in _NESTED]:
        obj[key] = _plain(value, seen)
    return obj


_NESTED = {_CheckedArray, list, dict, tuple, OrderedDict}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits numpy arrays, numpy scalars and builtin containers only, so a
    crafted metadata pickle cannot call e.g. `os.system` while it loads, nor build arrays
    from forged dtypes or raw pointers (check_dtype, _ArrayClass)."""

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(f'refusing {module}.{name}')
        if name in _NUMPY_WRAPPERS and module.startswith('numpy'):
            return _NUMPY_WRAPPERS[name]
        return super().find_class(module, name)

    def load(self):
        _LOAD_STATE.dtypes = {}
        try:
            loaded = super().load()
        finally:
            _LOAD_STATE.dtypes = None
        return _plain(loaded, set()) if type(loaded) in _NESTED else loaded


def restricted_loads(data):
    """`pickle.loads` through RestrictedUnpickler."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


def load_pickle(path):
    """Load a metadata pickle with RestrictedUnpickler.

    Raises DataError naming the file when it is missing, truncated, not a pickle, or asks
    for anything but numpy arrays and builtins."""
    if not os.path.isfile(path):
        raise DataError(f'metadata file not found: {path} (check --data-root / ann_file; '
                        f'tools/collect_data.py writes the infos)')
    try:
        with open(path, 'rb') as f:
            return RestrictedUnpickler(f).load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f'{path} is not an OpenScene metadata pickle: {err}; only '
                                f'numpy arrays and builtin types are loaded, so it was not '
                                f'read. Do not use files from unknown sources') from None
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, MemoryError) as err:
        raise DataError(f'cannot read metadata pickle {path}: {type(err).__name__}: {err} '
                        f'(truncated or not an OpenScene pickle; download it again, '
                        f'{VERIFY_HINT})') from err


def load_infos(path):
    """Frame dicts of an infos pickle (tools/collect_data.py writes a plain list; a dict
    holding `infos` or `data_list` is accepted too), loaded with load_pickle.

    Raises DataError naming the file when it holds anything else."""
    infos = load_pickle(path)
    if isinstance(infos, dict):
        infos = next((infos[key] for key in ('infos', 'data_list') if key in infos), infos)
    if not isinstance(infos, list) or not all(isinstance(f, dict) for f in infos):
        raise DataError(f'{path} holds a {type(infos).__name__}, not a list of frame dicts; '
                        f'write it with tools/collect_data.py')
    return infos


def resolve(data_root, path):
    """`path` joined to `data_root` unless it is absolute (or None)."""
    if path is None or os.path.isabs(path):
        return path
    return os.path.join(data_root, path)
