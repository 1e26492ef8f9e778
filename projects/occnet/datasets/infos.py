"""Reading metadata pickles safely and resolving the paths they hold."""
import io
import os
import pickle

VERIFY_HINT = 'run tools/verify_dataset.py on the data root'

# The only globals an OpenScene metadata pickle needs: numpy arrays, dtypes and scalars (numpy 1
# and numpy 2 module names), and plain builtin containers. `_codecs.encode` is how protocol-2
# pickles spell a bytes literal.
_NUMPY_CORE = {'_reconstruct', 'scalar', '_frombuffer'}
ALLOWED_GLOBALS = {
    **{(module, name): name for module in ('numpy.core.multiarray', 'numpy._core.multiarray',
                                           'numpy.core.numeric', 'numpy._core.numeric')
       for name in _NUMPY_CORE},
    ('numpy', 'ndarray'): 'ndarray',
    ('numpy', 'dtype'): 'dtype',
    **{(module, name): name for module in ('builtins', '__builtin__')
       for name in ('set', 'frozenset', 'list', 'dict', 'tuple', 'int', 'float', 'complex',
                    'str', 'bytes', 'bytearray', 'bool', 'slice', 'range')},
    ('collections', 'OrderedDict'): 'OrderedDict',
    ('_codecs', 'encode'): 'encode',
}


class DataError(RuntimeError):
    """Bad or missing input data; the message names the file/frame and the fix."""


class MissingFileError(DataError, FileNotFoundError):
    """An input file the metadata points to does not exist."""


class UnsafePickleError(DataError):
    """A pickle asked for a global outside ALLOWED_GLOBALS (it could run code)."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits numpy arrays, numpy scalars and builtin containers only, so a
    crafted metadata pickle cannot call e.g. `os.system` while it loads."""

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(f'refusing {module}.{name}')
        if module.startswith('numpy.core.'):  # numpy 1 names, written before numpy 2
            module = module.replace('numpy.core.', 'numpy._core.', 1)
            try:
                return super().find_class(module, name)
            except ModuleNotFoundError:  # running on numpy 1
                module = module.replace('numpy._core.', 'numpy.core.', 1)
        return super().find_class(module, name)


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


def resolve(data_root, path):
    """`path` joined to `data_root` unless it is absolute (or None)."""
    if path is None or os.path.isabs(path):
        return path
    return os.path.join(data_root, path)
