"""Reading the LiDAR point clouds of OpenScene v1.1 (`MergedPointCloud/<token>.pcd`, contract 8
of shared/DESIGN.md).

The files are PCD v0.7 as nuPlan writes them: an ASCII header (`FIELDS x y z intensity ring
lidar_info`, `TYPE F F F F F F`, `DATA binary`) followed by little-endian points, in the frame's
lidar frame, metres. All three PCD encodings are read:

- `DATA ascii`: one point per line;
- `DATA binary`: the fields of each point packed one after the other (little-endian);
- `DATA binary_compressed`: uint32 compressed size, uint32 raw size, then LZF-compressed data
  holding each field of all points in turn (field-major), as PCL writes it; decompressed in
  pure Python (about 15 ms for 23k points, against 0.4 ms for `binary`). Not seen in the
  release so far; checked against liblzf's own output.

Any TYPE F (sizes 2, 4, 8), U or I (sizes 1, 2, 4, 8) field is read; every column becomes
float32 and a field with COUNT k gives k columns (`name_0` ... `name_{k-1}`). Padding fields
named `_` are dropped. Columns come out as x, y, z, then the other fields in file order.

nuScenes sweeps (`samples/LIDAR_TOP/<name>.pcd.bin`, any path ending `.bin`) have no header:
little-endian float32 rows of 5 values, x y z intensity ring-index, lidar frame, metres
(read_nuscenes_bin). `read_points`, `load_points` and `point_fields` take either kind.
"""
import os
import struct
from typing import NamedTuple

import numpy as np

from occnet.datasets.infos import DataError, MissingFileError

LIDAR_HINT = 'run tools/verify_dataset.py --with-lidar on the data root'
HEADER_KEYS = ('VERSION', 'FIELDS', 'SIZE', 'TYPE', 'COUNT', 'WIDTH', 'HEIGHT', 'VIEWPOINT',
               'POINTS', 'DATA')
REQUIRED_KEYS = ('FIELDS', 'SIZE', 'TYPE', 'WIDTH', 'HEIGHT', 'POINTS', 'DATA')
TYPE_SIZES = {'F': (2, 4, 8), 'U': (1, 2, 4, 8), 'I': (1, 2, 4, 8)}
NUMPY_KINDS = {'F': 'f', 'U': 'u', 'I': 'i'}
DATA_FORMATS = ('ascii', 'binary', 'binary_compressed')
MAX_HEADER_BYTES = 65536
XYZ = ('x', 'y', 'z')
NUSCENES_SUFFIX = '.bin'
NUSCENES_FIELDS = ('x', 'y', 'z', 'intensity', 'ring')
NUSCENES_HINT = ('the nuScenes root must hold samples/LIDAR_TOP from the nuScenes download '
                 '(check data_root)')


class PcdHeader(NamedTuple):
    fields: tuple  # names, file order
    sizes: tuple  # bytes per value
    types: tuple  # 'F', 'U' or 'I'
    counts: tuple  # values per field
    num_points: int
    data: str  # 'ascii', 'binary' or 'binary_compressed'

    @property
    def point_size(self):
        return sum(s * c for s, c in zip(self.sizes, self.counts))

    def columns(self):
        """Output column names and, per column, (field index, value index in the field)."""
        names, where = [], []
        for i, (name, count) in enumerate(zip(self.fields, self.counts)):
            if name == '_':
                continue
            for k in range(count):
                names.append(name if count == 1 else f'{name}_{k}')
                where.append((i, k))
        order = [names.index(axis) for axis in XYZ]
        order += [c for c in range(len(names)) if c not in order]
        return tuple(names[c] for c in order), [where[c] for c in order]


def _fail(path, frame, problem):
    """DataError naming a damaged file, its frame, what is wrong and the fix."""
    where = f'point cloud {path}' + (f' (frame {frame})' if frame is not None else '')
    return DataError(f'{where}: {problem}; download or extract the lidar archive holding it '
                     f'again ({LIDAR_HINT})')


def _malformed(path, frame, problem):
    return _fail(path, frame, f'not a valid PCD v0.7 file: {problem}')


def parse_header(raw, path, frame=None):
    """(PcdHeader, offset of the first data byte) of a PCD file's bytes."""
    values, offset = {}, 0
    while 'DATA' not in values:
        end = raw.find(b'\n', offset, MAX_HEADER_BYTES)
        if end < 0:
            problem = ('empty file (0 bytes)' if not raw else
                       'no DATA line in the header' if len(raw) < MAX_HEADER_BYTES else
                       f'no DATA line in its first {MAX_HEADER_BYTES} bytes')
            raise _malformed(path, frame, problem)
        try:
            line = raw[offset:end].decode('ascii').strip()
        except UnicodeDecodeError:
            raise _malformed(path, frame, f'non-ASCII bytes in header line '
                             f'{raw[offset:end][:40]!r}') from None
        offset = end + 1
        if not line or line.startswith('#'):
            continue
        key, *words = line.split()
        if key not in HEADER_KEYS:
            raise _malformed(path, frame, f'unknown header line {line[:60]!r} (PCD v0.7 keys: '
                             f'{", ".join(HEADER_KEYS)})')
        values[key] = words
    missing = [key for key in REQUIRED_KEYS if key not in values]
    if missing:
        raise _malformed(path, frame, f'header has no {", ".join(missing)} line')
    fields = tuple(values['FIELDS'])
    counts = values.get('COUNT', ['1'] * len(fields))
    for key, words in (('SIZE', values['SIZE']), ('TYPE', values['TYPE']), ('COUNT', counts)):
        if len(words) != len(fields):
            raise _malformed(path, frame, f'{key} has {len(words)} entries for '
                             f'{len(fields)} FIELDS')
    try:
        sizes, counts = tuple(map(int, values['SIZE'])), tuple(map(int, counts))
        width, height, num_points = (int(values[key][0]) for key in ('WIDTH', 'HEIGHT', 'POINTS'))
    except (ValueError, IndexError):
        raise _malformed(path, frame, 'SIZE, COUNT, WIDTH, HEIGHT and POINTS must be '
                         'integers') from None
    types = tuple(values['TYPE'])
    for name, kind, size, count in zip(fields, types, sizes, counts):
        if size not in TYPE_SIZES.get(kind, ()):
            raise _malformed(path, frame, f'field {name!r} has TYPE {kind} SIZE {size} (known: '
                             + ', '.join(f'{k} {"/".join(map(str, s))}'
                                         for k, s in TYPE_SIZES.items()) + ')')
        if count < 1:
            raise _malformed(path, frame, f'field {name!r} has COUNT {count}')
    named = [name for name in fields if name != '_']
    if len(set(named)) != len(named):
        raise _malformed(path, frame, f'repeated field names in FIELDS {" ".join(fields)}')
    absent = [axis for axis in XYZ if axis not in named]
    if absent:
        raise _malformed(path, frame, f'no {" ".join(absent)} field (FIELDS '
                         f'{" ".join(fields)}); a point cloud needs x y z')
    if any(counts[fields.index(axis)] != 1 for axis in XYZ):
        raise _malformed(path, frame, 'x, y and z must have COUNT 1')
    if min(width, height, num_points) < 0 or width * height != num_points:
        raise _malformed(path, frame, f'POINTS {num_points} is not WIDTH x HEIGHT = '
                         f'{width} x {height}')
    data = values['DATA'][0] if values['DATA'] else ''
    if data not in DATA_FORMATS:
        raise _malformed(path, frame, f'DATA {data!r} (known: {", ".join(DATA_FORMATS)})')
    return PcdHeader(fields, sizes, types, counts, num_points, data), offset


def lzf_decompress(data, raw_size):
    """Bytes of an LZF stream (liblzf's format, as PCL writes it) of `raw_size` bytes.

    Raises ValueError when the stream is corrupt or does not decode to raw_size bytes."""
    out, pos, end = bytearray(), 0, len(data)
    while pos < end:
        ctrl = data[pos]
        pos += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            run = ctrl + 1
            if pos + run > end:
                raise ValueError('literal run past the end of the data')
            out += data[pos:pos + run]
            pos += run
            continue
        length = ctrl >> 5  # back reference: copy length + 2 bytes from `back` bytes behind
        if length == 7:
            if pos >= end:
                raise ValueError('back reference cut off')
            length += data[pos]
            pos += 1
        if pos >= end:
            raise ValueError('back reference cut off')
        back = ((ctrl & 0x1F) << 8) + data[pos] + 1
        pos += 1
        length += 2
        start = len(out) - back
        if start < 0:
            raise ValueError('back reference before the start of the data')
        if back >= length:
            out += out[start:start + length]
        else:  # the copy overlaps what it writes: a repeated pattern of `back` bytes
            out += (out[start:] * (length // back + 1))[:length]
        if len(out) > raw_size:
            break
    if len(out) != raw_size:
        raise ValueError(f'decodes to {len(out)} bytes, the header says {raw_size}')
    return bytes(out)


def _value_dtype(header, i):
    return np.dtype(f'<{NUMPY_KINDS[header.types[i]]}{header.sizes[i]}')


def _binary_columns(header, data, where):
    """Columns of `binary` data: one structured view, no per-point Python."""
    formats, offsets, offset = [], [], 0
    for i, (size, count) in enumerate(zip(header.sizes, header.counts)):
        value = _value_dtype(header, i)
        formats.append((value, (count,)) if count > 1 else value)
        offsets.append(offset)
        offset += size * count
    dtype = np.dtype({'names': [f'f{i}' for i in range(len(header.fields))], 'formats': formats,
                      'offsets': offsets, 'itemsize': header.point_size})
    records = np.frombuffer(data, dtype=dtype, count=header.num_points)
    out = np.empty((header.num_points, len(where)), dtype=np.float32)
    for column, (i, k) in enumerate(where):
        values = records[f'f{i}']
        out[:, column] = values[:, k] if header.counts[i] > 1 else values
    return out


def _compressed_columns(header, data, where):
    """Columns of decompressed `binary_compressed` data (each field of all points in turn)."""
    out = np.empty((header.num_points, len(where)), dtype=np.float32)
    starts = np.cumsum((0,) + tuple(header.num_points * s * c
                                    for s, c in zip(header.sizes, header.counts))).tolist()
    for column, (i, k) in enumerate(where):
        values = np.frombuffer(data, dtype=_value_dtype(header, i),
                               count=header.num_points * header.counts[i], offset=starts[i])
        out[:, column] = values.reshape(header.num_points, header.counts[i])[:, k]
    return out


def _ascii_columns(header, text, where, path, frame):
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != header.num_points:
        raise _fail(path, frame, f'truncated: {len(lines)} ascii rows, the header says POINTS '
                    f'{header.num_points}')
    values_per_point = sum(header.counts)
    if not lines:
        return np.zeros((0, len(where)), dtype=np.float32)
    try:
        table = np.loadtxt(lines, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise _malformed(path, frame, f'ascii data is not {values_per_point} numbers per row '
                         f'({err})') from None
    if table.shape[1] != values_per_point:
        raise _malformed(path, frame, f'ascii rows hold {table.shape[1]} numbers, FIELDS and '
                         f'COUNT say {values_per_point}')
    first = np.cumsum((0,) + header.counts)
    return np.stack([table[:, first[i] + k] for i, k in where], axis=1).astype(np.float32)


def _require_file(path, frame):
    if not os.path.isfile(path):
        what = 'broken symlink' if os.path.islink(path) else 'missing'
        raise MissingFileError(f'{what} point cloud {path}' +
                               (f' for frame {frame}' if frame is not None else '') +
                               '; extract the lidar (MergedPointCloud) archive of its log or '
                               f'link your nuPlan sensor data ({LIDAR_HINT})')


def _read_bytes(path, frame):
    _require_file(path, frame)
    with open(path, 'rb') as f:
        return f.read()


def read_pcd(path, frame=None):
    """(points float32 (N, C), column names) of a PCD file: x y z first, metres, lidar frame.

    Args:
        path: the .pcd file.
        frame: the frame token, named in errors.
    Raises:
        MissingFileError: no such file.
        DataError: truncated or malformed, naming the file, the frame and the fix.
    """
    raw = _read_bytes(path, frame)
    header, offset = parse_header(raw, path, frame)
    names, where = header.columns()
    if header.data == 'ascii':
        try:
            text = raw[offset:].decode('ascii')
        except UnicodeDecodeError:
            raise _malformed(path, frame, 'non-ASCII bytes in DATA ascii') from None
        return _ascii_columns(header, text, where, path, frame), names
    expected = header.num_points * header.point_size
    if header.data == 'binary':
        if len(raw) - offset < expected:
            raise _fail(path, frame, f'truncated: {len(raw) - offset} data bytes, POINTS '
                        f'{header.num_points} x {header.point_size} bytes per point need '
                        f'{expected}')
        return _binary_columns(header, memoryview(raw)[offset:], where), names
    if len(raw) - offset < 8:
        raise _fail(path, frame, 'truncated: no compressed-size words after '
                    'DATA binary_compressed')
    packed, raw_size = struct.unpack_from('<II', raw, offset)
    if raw_size != expected:
        raise _malformed(path, frame, f'binary_compressed raw size {raw_size} is not POINTS '
                         f'{header.num_points} x {header.point_size} bytes = {expected}')
    if len(raw) - offset - 8 < packed:
        raise _fail(path, frame, f'truncated: {len(raw) - offset - 8} compressed bytes, '
                    f'the header says {packed}')
    try:
        data = lzf_decompress(memoryview(raw)[offset + 8:offset + 8 + packed], raw_size)
    except ValueError as err:
        raise _fail(path, frame, f'corrupt LZF data ({err})') from None
    return _compressed_columns(header, data, where), names


def is_nuscenes_bin(path):
    """Whether `path` names a headerless nuScenes sweep (`.pcd.bin`, `.bin`)."""
    return str(path).endswith(NUSCENES_SUFFIX)


def _require_nuscenes_bin(path, frame):
    if not os.path.isfile(path):
        raise MissingFileError(f'missing point cloud {path}' +
                               (f' for frame {frame}' if frame is not None else '') +
                               f'; {NUSCENES_HINT}')


def read_nuscenes_bin(path, frame=None):
    """Points (N, 5) float32 x, y, z (metres, lidar frame), intensity, ring index of a nuScenes
    `.pcd.bin` sweep.

    Raises:
        MissingFileError: no such file.
        DataError: empty, or its size is not a whole number of 20-byte points; names the file
            and the frame.
    """
    _require_nuscenes_bin(path, frame)
    with open(path, 'rb') as f:
        raw = f.read()
    point_size = 4 * len(NUSCENES_FIELDS)
    if not raw or len(raw) % point_size:
        where = f'point cloud {path}' + (f' (frame {frame})' if frame is not None else '')
        problem = ('empty file (0 bytes)' if not raw else
                   f'truncated: {len(raw)} bytes is not a whole number of {point_size}-byte '
                   f'points ({len(NUSCENES_FIELDS)} float32: {" ".join(NUSCENES_FIELDS)})')
        raise DataError(f'{where}: {problem}; download or extract it again ({NUSCENES_HINT})')
    return np.frombuffer(raw, dtype='<f4').reshape(-1, len(NUSCENES_FIELDS)).astype(np.float32)


def read_points(path, frame=None):
    """(points float32 (N, C), column names) of a sweep: a nuScenes `.bin` (read_nuscenes_bin)
    or a PCD file (read_pcd); x y z first, metres, lidar frame."""
    if is_nuscenes_bin(path):
        return read_nuscenes_bin(path, frame), NUSCENES_FIELDS
    return read_pcd(path, frame)


def load_points(path, frame=None):
    """Points of a PCD file or a nuScenes `.pcd.bin` (read_points): float32 (N, C), columns x y
    z (metres, lidar frame), then the other fields in file order (point_fields names them)."""
    return read_points(path, frame)[0]


def point_fields(path, frame=None):
    """Column names of load_points(path), e.g. ('x', 'y', 'z', 'intensity', 'ring',
    'lidar_info') for nuPlan PCD, NUSCENES_FIELDS for `.bin`; reads only the header."""
    if is_nuscenes_bin(path):
        _require_nuscenes_bin(path, frame)
        return NUSCENES_FIELDS
    _require_file(path, frame)
    with open(path, 'rb') as f:
        head = f.read(MAX_HEADER_BYTES)
    return parse_header(head, path, frame)[0].columns()[0]
