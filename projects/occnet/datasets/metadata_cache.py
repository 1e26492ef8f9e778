"""The parsed metadata of a dataset, cached beside its infos as a column file.

The first process that opens a dataset builds `<ann_file>.<key>.cols` (parsing the infos
pickle as before, through the restricted unpickler) under a file lock; every later process,
rank or worker maps it (datasets.columns). The file is rebuilt when it is stale:
- the infos pickle changed (source_stamp: size, times, inode, its first and last MiB);
- the dataset's settings that shape the parsed frames changed (class, data root, labels,
  cameras, bad-frame handling, previous-frame gap): they pick the file name (`key`);
- the code that parses frames changed: the file records a hash of the source of the dataset
  class's modules and of the parsing helpers.
A cache that cannot be written (a read-only folder) is not an error: the dataset parses the
infos in memory, as it did before, and says so once.
"""
import fcntl
import hashlib
import inspect
import json
import logging
import os
import sys

from mmengine.logging import print_log

from occnet.datasets import collect, columns, frame_checks, infos, temporal
from occnet.datasets.columns import ColumnFileError, ColumnFrames, write_columns

SUFFIX = '.cols'


def code_hash(cls):
    """Hash of the source files of `cls`'s occnet classes and of the parsing helpers."""
    modules = {sys.modules[c.__module__] for c in cls.__mro__ if c.__module__.startswith('occnet')}
    modules |= {collect, columns, frame_checks, infos, temporal}
    digest = hashlib.sha256()
    for path in sorted(inspect.getsourcefile(m) for m in modules):
        with open(path, 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def source_stamp(path, edge=1 << 20):
    """What identifies the infos file's content cheaply: its real path, inode, size, change
    and modification times, and a hash of its first and last MiB (file times can be coarser
    than two quick rewrites)."""
    stat = os.stat(path)
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        digest.update(f.read(edge))
        f.seek(max(stat.st_size - edge, 0))
        digest.update(f.read(edge))
    return dict(path=os.path.realpath(path), inode=stat.st_ino, size=stat.st_size,
                mtime_ns=stat.st_mtime_ns, ctime_ns=stat.st_ctime_ns,
                edges=digest.hexdigest()[:16])


def cache_path(ann_file, settings):
    """`<ann_file>.<hash of settings>.cols`."""
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return f'{ann_file}.{key}{SUFFIX}'


def _fresh(path, meta):
    """The mapped frames of `path` when it exists and matches `meta`, else None."""
    if not os.path.exists(path):
        return None
    try:
        frames = ColumnFrames(path)
    except (ColumnFileError, OSError, ValueError, KeyError) as err:
        print_log(f'rebuilding the metadata cache {path}: {err}', logger='current',
                  level=logging.WARNING)
        return None
    return frames if all(frames.meta.get(k) == v for k, v in meta.items()) else None


def open_or_build(ann_file, settings, cls, build):
    """Mapped ColumnFrames of the infos `ann_file` for a dataset with `settings`.

    `build()` parses the infos and returns (frames: list of dicts, tables: {name: array},
    extra meta: dict); it runs in one process only (the others wait on the lock and then map
    its file). Returns None when the cache cannot be written here."""
    path = cache_path(ann_file, settings)
    meta = dict(source=source_stamp(ann_file), code=code_hash(cls), settings=settings)
    frames = _fresh(path, meta)
    if frames is not None:
        return frames
    try:
        lock = open(path + '.lock', 'a')
    except OSError as err:
        print_log(f'cannot cache the parsed metadata beside {ann_file} ({err}); parsing it in '
                  f'this process (every rank does so: make the folder writable to share one '
                  f'mapped copy)', logger='current', level=logging.WARNING)
        return None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others map its result
        frames = _fresh(path, meta)
        if frames is not None:
            return frames
        print_log(f'building the metadata cache {path} (once per infos file and dataset '
                  f'settings; later runs map it)', logger='current')
        frame_list, tables, extra = build()
        try:
            write_columns(path, frame_list, {**meta, **extra}, tables)
        except OSError as err:
            print_log(f'cannot write the metadata cache {path} ({err}); parsing in memory',
                      logger='current', level=logging.WARNING)
            return None
        return ColumnFrames(path)
