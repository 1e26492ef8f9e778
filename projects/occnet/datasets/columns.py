"""A columnar file of parsed frame dicts that every process maps from disk without copying.

At OpenScene trainval size (about 400k frames) each rank of a node used to unpickle and parse
the infos itself: 130 s and 4 GB per rank. A column file holds the parsed frames once, one
flat array per key, and a process maps it read-only: the pages live in the page cache, shared
by every rank and dataloader worker, and a frame is read by slicing its row.

Layout of one file (little-endian):
    8 bytes  magic b'OCCCOL01'
    8 bytes  uint64 header length H
    H bytes  JSON header: {'rows': n, 'meta': {...}, 'size': total file bytes,
             'columns': {key: {'kind', 'dtype', 'shape', 'offset', ...}}}
    data     each array at a 64-byte aligned offset from the start of the file
Kinds of column (from the values of a key across the frames):
    'array'  numpy arrays of one shape and dtype: (n, *shape)
    'int' / 'float' / 'bool'   Python scalars: (n,) int64 / float64 / bool
    'str'    a string or None per frame; 'strs' a list of k strings per frame:
             UTF-8 bytes concatenated in `blob`, (n * k + 1,) int64 `offsets` into it, and
             a (n * k,) bool `null` mask
A nullable 'int' / 'float' / 'bool' column has a `null` mask too. Nothing in the file is
pickled: reading it runs no code from it, and the header's `size` catches a truncated file.
"""
import json
import os
import tempfile

import numpy as np

MAGIC = b'OCCCOL01'
ALIGN = 64


class ColumnFileError(RuntimeError):
    """A column file that is not one, is truncated, or was written by another version."""


def _kind(values, key):
    """The column kind of a key's values (None allowed except in arrays)."""
    present = [v for v in values if v is not None]
    if not present:
        return 'str'
    first = present[0]
    if isinstance(first, (np.ndarray, list, tuple)) and len(present) != len(values):
        raise TypeError(f'{key}: None among arrays or string lists')
    if isinstance(first, np.ndarray):
        return 'array'
    if isinstance(first, (bool, np.bool_)):
        kind, types = 'bool', (bool, np.bool_)
    elif isinstance(first, (int, np.integer)):
        kind, types = 'int', (int, np.integer)
    elif isinstance(first, (float, np.floating)):
        kind, types = 'float', (float, np.floating)
    elif isinstance(first, str):
        kind, types = 'str', (str,)
    elif isinstance(first, (list, tuple)) and all(isinstance(s, str) for s in first):
        kind, types = 'strs', (list, tuple)
    else:
        raise TypeError(f'{key}: a {type(first).__name__} cannot be stored as a column')
    if not all(isinstance(v, types) and not (kind == 'int' and isinstance(v, (bool, np.bool_)))
               for v in present):
        raise TypeError(f'{key}: values of mixed types')
    return kind


def _string_arrays(strings):
    """(offsets (len + 1,) int64, blob uint8, null bool) of a list of str / None."""
    encoded = [b'' if s is None else s.encode('utf-8') for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    blob = np.frombuffer(b''.join(encoded), dtype=np.uint8)
    return offsets, blob, np.array([s is None for s in strings], dtype=bool)


def frame_columns(frames):
    """Column arrays and specs of a list of frame dicts with the same keys.

    Returns (arrays: list of (name, ndarray), specs: {key: spec}); raises TypeError naming the
    key when a value has no column kind or the frames disagree (keys, shapes, dtypes)."""
    keys = list(frames[0]) if frames else []
    for i, frame in enumerate(frames):
        if list(frame) != keys:
            raise TypeError(f'frame {i} has keys {sorted(frame)}, frame 0 {sorted(keys)}')
    arrays, specs = [], {}
    for key in keys:
        values = [frame[key] for frame in frames]
        kind = _kind(values, key)
        spec = dict(kind=kind)
        if kind == 'array':
            dtypes, shapes = {v.dtype.str for v in values}, {v.shape for v in values}
            if len(dtypes) != 1 or len(shapes) != 1:
                raise TypeError(f'{key}: arrays of several shapes / dtypes {shapes} {dtypes}')
            arrays.append((key, np.stack(values)))
        elif kind in ('str', 'strs'):
            if kind == 'strs':
                widths = {len(v) for v in values}
                if len(widths) > 1:
                    raise TypeError(f'{key}: string lists of several lengths {widths}')
                spec['width'] = widths.pop()
                values = [s for v in values for s in v]
            offsets, blob, null = _string_arrays(values)
            arrays += [(f'{key}/offsets', offsets), (f'{key}/blob', blob)]
            if null.any():
                arrays.append((f'{key}/null', null))
        else:
            dtype = dict(int=np.int64, float=np.float64, bool=bool)[kind]
            null = np.array([v is None for v in values], dtype=bool)
            arrays.append((key, np.array([0 if v is None else v for v in values], dtype=dtype)))
            if null.any():
                arrays.append((f'{key}/null', null))
        specs[key] = spec
    return arrays, specs


def write_columns(path, frames, meta, tables=None):
    """Write `frames` (a list of dicts with the same keys and column-able values), the
    JSON-able `meta` and named whole arrays `tables` ({name: ndarray}, e.g. links between
    frames) to the column file `path`, atomically (a temporary file renamed)."""
    arrays, specs = frame_columns(frames)
    arrays += [(f'table:{name}', np.asarray(array)) for name, array in (tables or {}).items()]
    layout, offset = {}, 0
    for name, array in arrays:
        layout[name] = dict(dtype=array.dtype.str, shape=list(array.shape), offset=offset)
        offset += -(-array.nbytes // ALIGN) * ALIGN
    header = dict(rows=len(frames), meta=meta, keys=specs, arrays=layout)
    for _ in range(2):  # the data start depends on the header's length, which holds the size
        encoded = json.dumps(header).encode('utf-8')
        start = -(-(16 + len(encoded)) // ALIGN) * ALIGN
        header['size'] = start + offset
    encoded = json.dumps(header).encode('utf-8')
    assert -(-(16 + len(encoded)) // ALIGN) * ALIGN == start
    handle, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                   prefix=os.path.basename(path) + '.tmp.')
    try:
        with os.fdopen(handle, 'wb') as f:
            f.write(MAGIC + np.uint64(len(encoded)).tobytes() + encoded)
            for name, array in arrays:
                f.seek(start + layout[name]['offset'])
                f.write(np.ascontiguousarray(array).tobytes())
            f.truncate(header['size'])
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep other users from mapping it
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_header(path, f=None):
    """The JSON header of a column file (read from the open binary file `f` when given);
    ColumnFileError when the file is not one or is shorter than its header says (a write
    cut off)."""
    if f is None:
        with open(path, 'rb') as f:
            return read_header(path, f)
    f.seek(0)
    head = f.read(16)
    if len(head) < 16 or head[:8] != MAGIC:
        raise ColumnFileError(f'{path} is not an occnet column file')
    length = int(np.frombuffer(head[8:], dtype=np.uint64)[0])
    try:
        header = json.loads(f.read(length).decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as err:
        raise ColumnFileError(f'{path}: unreadable header ({err})') from None
    size = os.fstat(f.fileno()).st_size
    if size != header.get('size'):
        raise ColumnFileError(f'{path} is {size} bytes, its header says {header.get("size")} '
                              f'(truncated)')
    header['data_start'] = -(-(16 + length) // ALIGN) * ALIGN
    return header


class ColumnFrames:
    """Read-only frames of a column file, mapped from disk.

    `len(frames)`, `frames[i]` (a fresh dict equal to the i-th frame written: arrays are
    copies, scalars Python objects), `frames.column(key)` ((n, ...) read-only array of an
    'array' / 'int' / 'float' / 'bool' key, mapped), `frames.table(name)` and
    `frames.meta`."""

    def __init__(self, path):
        self.path = path
        with open(path, 'rb') as f:  # header and data from one open file, even if replaced
            header = read_header(path, f)
            buffer = np.memmap(f, dtype=np.uint8, mode='r')
        self.meta, self.rows, self.keys = header['meta'], header['rows'], header['keys']
        self.arrays = {}
        for name, spec in header['arrays'].items():
            dtype = np.dtype(spec['dtype'])
            count = int(np.prod(spec['shape'], dtype=np.int64))
            start = header['data_start'] + spec['offset']
            self.arrays[name] = np.frombuffer(buffer, dtype=dtype, count=count,
                                              offset=start).reshape(spec['shape'])

    def __reduce__(self):
        # a spawned dataloader worker maps the file again instead of receiving copies
        return ColumnFrames, (self.path,)

    def __len__(self):
        return self.rows

    def column(self, key):
        """(n, ...) read-only mapped array of a numeric key (None rows read as 0)."""
        if self.keys[key]['kind'] in ('str', 'strs'):
            raise TypeError(f'{key} is a string column')
        return self.arrays[key]

    def table(self, name):
        """A whole array written with `tables` (read-only, mapped)."""
        return self.arrays[f'table:{name}']

    def _string(self, key, i):
        null = self.arrays.get(f'{key}/null')
        if null is not None and null[i]:
            return None
        start, end = self.arrays[f'{key}/offsets'][i:i + 2]
        return self.arrays[f'{key}/blob'][start:end].tobytes().decode('utf-8')

    def _value(self, key, spec, i):
        kind = spec['kind']
        if kind == 'str':
            return self._string(key, i)
        if kind == 'strs':
            width = spec['width']
            return [self._string(key, i * width + j) for j in range(width)]
        null = self.arrays.get(f'{key}/null')
        if null is not None and null[i]:
            return None
        value = self.arrays[key][i]
        return np.array(value) if kind == 'array' else value.item()

    def __getitem__(self, i):
        if not -self.rows <= i < self.rows:
            raise IndexError(f'frame {i} of {self.rows}')
        i = i % self.rows if self.rows else i
        return {key: self._value(key, spec, i) for key, spec in self.keys.items()}
