"""Reading metadata pickles and resolving the paths they hold."""
import os
import pickle


class DataError(RuntimeError):
    """Bad or missing input data; the message names the file/frame and the fix."""


class MissingFileError(DataError, FileNotFoundError):
    """An input file the metadata points to does not exist."""


def load_pickle(path):
    """Load a metadata pickle with an error that names the file when it is missing or broken."""
    if not os.path.isfile(path):
        raise DataError(f'metadata file not found: {path} (check --data-root / ann_file; '
                        f'tools/collect_data.py writes the infos)')
    try:
        with open(path, 'rb') as f:
            return pickle.load(f)
    except (EOFError, pickle.UnpicklingError, ValueError, AttributeError) as err:
        raise DataError(f'cannot read metadata pickle {path}: {err} (truncated or not an '
                        f'OpenScene pickle; download it again)') from err


def resolve(data_root, path):
    """`path` joined to `data_root` unless it is absolute (or None)."""
    if path is None or os.path.isabs(path):
        return path
    return os.path.join(data_root, path)
