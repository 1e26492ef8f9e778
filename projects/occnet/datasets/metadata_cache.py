"""The parsed metadata of a dataset, cached beside its infos as a column file.

The first process that opens a dataset builds `<ann_file>.<key>.cols` (parsing the infos
pickle as before, through the restricted unpickler) under a file lock; every later process,
rank or worker maps it (datasets.columns). The file is rebuilt when it is stale:
- the infos pickle changed (source_stamp: size, times, inode, its first and last MiB);
- the dataset's settings that shape the parsed frames changed (class, data root, labels,
  cameras, bad-frame handling, previous-frame gap): they pick the file name (`key`);
- the code that parses frames changed: the file name and header hold a hash of the source
  of the dataset class's modules and of the parsing helpers (code_hash).
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

from occnet import descriptions, geometry
from occnet.datasets import infos
from occnet.datasets.columns import ColumnFileError, ColumnFrames, write_columns

SUFFIX = '.cols'


def code_hash(cls):
    """Hash of the source that shapes the parsed frames: the files of `cls`'s classes (a
    user's subclass included; mmengine's and the standard library's left out), every module
    of occnet.datasets' top level, occnet.geometry and occnet.descriptions."""
    paths = {inspect.getsourcefile(sys.modules[c.__module__]) for c in cls.__mro__
             if c.__module__ != 'builtins' and not c.__module__.startswith('mmengine')}
    folder = os.path.dirname(os.path.abspath(infos.__file__))
    paths |= {os.path.join(folder, name) for name in os.listdir(folder) if name.endswith('.py')}
    paths |= {inspect.getsourcefile(geometry), inspect.getsourcefile(descriptions)}
    digest = hashlib.sha256()
    for path in sorted(p for p in paths if p):
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


def cache_path(ann_file, settings, code):
    """`<ann_file>.<hash of settings and code>.cols`: another occnet version or another
    setting gets a file of its own, so two checkouts sharing a data folder never replace each
    other's file (a file is replaced only when its infos change)."""
    key = json.dumps(dict(settings=settings, code=code), sort_keys=True)
    return f'{ann_file}.{hashlib.sha256(key.encode()).hexdigest()[:10]}{SUFFIX}'


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
    its file). Returns (ColumnFrames, None), or (None, what build() returned) when the
    parsed frames could not be written (then the caller uses them in memory), or (None, None)
    when the cache cannot be used here at all (the caller parses)."""
    code = code_hash(cls)
    path = cache_path(ann_file, settings, code)
    meta = dict(source=source_stamp(ann_file), code=code, settings=settings)
    frames = _fresh(path, meta)
    if frames is not None:
        return frames, None
    try:
        lock = open(path + '.lock', 'a')
    except OSError as err:
        _no_cache(ann_file, err)
        return None, None
    with lock:
        try:  # one builder; the others map its result
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError as err:  # file systems without flock (some Lustre, FUSE, CIFS mounts)
            _no_cache(ann_file, err)
            return None, None
        frames = _fresh(path, meta)
        if frames is not None:
            return frames, None
        print_log(f'building the metadata cache {path} (once per infos file, dataset '
                  f'settings and occnet version; later runs map it)', logger='current')
        built = build()
        frame_list, tables, extra = built
        try:
            write_columns(path, frame_list, {**meta, **extra}, tables)
        except (OSError, TypeError, ValueError, UnicodeError) as err:
            print_log(f'cannot write the metadata cache {path} ({type(err).__name__}: {err}); '
                      f'using the frames parsed in this process (metadata_cache=False on the '
                      f'dataset skips the cache)', logger='current', level=logging.WARNING)
            return None, built
        others = sorted(name for name in os.listdir(os.path.dirname(os.path.abspath(path)))
                        if name.startswith(os.path.basename(ann_file) + '.')
                        and name.endswith(SUFFIX) and name != os.path.basename(path))
        if others:
            print_log(f'other metadata caches of {ann_file} (other settings or occnet '
                      f'versions): {others}; delete those no run uses', logger='current')
        return ColumnFrames(path), None


def _no_cache(ann_file, err):
    print_log(f'cannot cache the parsed metadata beside {ann_file} ({err}); parsing it in '
              f'this process (every rank does so: make the folder writable, on a file system '
              f'with flock, to share one mapped copy)', logger='current', level=logging.WARNING)
