"""Files written whole or not at all: a temporary file in the same folder, renamed over the
target, so a reader (or a process killed mid-write) never sees a partial file."""
import os
import tempfile

TMP_PREFIX = '.tmp-'  # temporary files of interrupted writes start with this


def replace_atomically(path, write, fsync=False):
    """Call `write(file_object)` on a temporary file next to `path`, then rename it to
    `path` (folders created; mode 0644). With `fsync`, the data reaches the disk before the
    rename, so even a power cut leaves the old file or the new one."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + os.path.basename(path) + '.',
                                   dir=folder)
    try:
        with os.fdopen(handle, 'wb') as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_atomically(path, data):
    """Write bytes to `path` atomically and durably (replace_atomically with fsync)."""
    replace_atomically(path, lambda f: f.write(data), fsync=True)
