"""occnet.datasets.pointcloud on hand-written PCD files (binary, ascii, mixed types,
binary_compressed, damaged), LoadPoints on a synthetic frame, and RandomFlipBEV's points."""
import re
import struct

import numpy as np
import pytest

from occnet.datasets.infos import DataError, MissingFileError
from occnet.datasets.pointcloud import load_points, lzf_decompress, point_fields
from occnet.datasets.transforms import LoadPoints, RandomFlipBEV
from occnet.geometry import lidar2img_matrix, project_points
from occnet.registry import DATASETS

from conftest import make_lidar_root

RELEASE_FIELDS = ('x', 'y', 'z', 'intensity', 'ring', 'lidar_info')
ROWS = [(1.5, -2.25, 0.125, 17.0, 3.0, 0.0),
        (10.0, 0.5, -1.75, 255.0, 31.0, 1.0),
        (-40.0, 60.25, 2.0, 0.0, 0.0, 2.0)]
TOKEN = 'ab12cd34ef56ab78'


def header(data='binary', fields='x y z intensity ring lidar_info', size='4 4 4 4 4 4',
           types='F F F F F F', count='1 1 1 1 1 1', width=3, points=3):
    """A nuPlan-style PCD v0.7 header (each argument may be None to leave its line out)."""
    lines = ['# .PCD v0.7 - Point Cloud Data file format', 'VERSION 0.7',
             f'FIELDS {fields}', f'SIZE {size}', f'TYPE {types}', f'COUNT {count}',
             f'WIDTH {width}', 'HEIGHT 1', 'VIEWPOINT 0 0 0 1 0 0 0', f'POINTS {points}',
             f'DATA {data}']
    return ''.join(f'{line}\n' for line in lines if 'None' not in line).encode('ascii')


def release_bytes():
    return header() + b''.join(struct.pack('<6f', *row) for row in ROWS)


def write(tmp_path, content, name='cloud.pcd'):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_release_binary_by_value(tmp_path):
    path = write(tmp_path, release_bytes())
    points = load_points(path)
    assert points.dtype == np.float32 and points.shape == (3, 6)
    np.testing.assert_array_equal(points, np.array(ROWS, dtype=np.float32))
    assert point_fields(path) == RELEASE_FIELDS


def test_xyz_come_first_then_file_order(tmp_path):
    data = b''.join(struct.pack('<5f', row[3], row[0], row[4], row[1], row[2]) for row in ROWS)
    path = write(tmp_path, header(fields='intensity x ring y z', size='4 4 4 4 4',
                                  types='F F F F F', count='1 1 1 1 1') + data)
    assert point_fields(path) == ('x', 'y', 'z', 'intensity', 'ring')
    np.testing.assert_array_equal(load_points(path), np.array(ROWS, np.float32)[:, :5])


def test_ascii(tmp_path):
    text = ''.join(' '.join(f'{v:g}' for v in row) + '\n' for row in ROWS)
    path = write(tmp_path, header(data='ascii') + text.encode('ascii'))
    np.testing.assert_array_equal(load_points(path), np.array(ROWS, dtype=np.float32))


def test_mixed_types_count_2_and_padding(tmp_path):
    """F8 z, a U8 label, an I16 normal of COUNT 2, a padding byte '_' and a U32 stamp."""
    rows = [(1.0, 2.0, -3.5, 200, -3, 7, 0xEE, 4_000_000_000),
            (-0.25, 8.0, 0.0, 0, 32767, -32768, 0xEE, 1)]
    data = b''.join(struct.pack('<ffdBhhBI', *row) for row in rows)
    path = write(tmp_path, header(fields='x y z label normal _ stamp', size='4 4 8 1 2 1 4',
                                  types='F F F U I U U', count='1 1 1 1 2 1 1', width=2,
                                  points=2) + data)
    assert point_fields(path) == ('x', 'y', 'z', 'label', 'normal_0', 'normal_1', 'stamp')
    expected = np.array([row[:6] + row[7:] for row in rows], dtype=np.float32)
    np.testing.assert_array_equal(load_points(path), expected)
    ascii_path = write(tmp_path, header(data='ascii', fields='x y z label normal _ stamp',
                                        size='4 4 8 1 2 1 4', types='F F F U I U U',
                                        count='1 1 1 1 2 1 1', width=2, points=2)
                       + ''.join(' '.join(map(str, row)) + '\n' for row in rows).encode(),
                       'ascii.pcd')
    np.testing.assert_array_equal(load_points(ascii_path), expected)


def test_truncated_binary_names_file_frame_and_fix(tmp_path):
    path = write(tmp_path, release_bytes()[:-5])
    with pytest.raises(DataError, match=f'point cloud {re.escape(path)} \\(frame {TOKEN}\\): '
                       'truncated: 67 data bytes.*need 72.*verify_dataset.py --with-lidar'):
        load_points(path, frame=TOKEN)
    with pytest.raises(MissingFileError, match=f'missing point cloud .*nope.pcd for frame '
                       f'{TOKEN}.*MergedPointCloud'):
        load_points(str(tmp_path / 'nope.pcd'), frame=TOKEN)


@pytest.mark.parametrize('content, problem', [
    (header(points=None) + bytes(72), 'header has no POINTS line'),
    (header(types='F F X F F F') + bytes(72), "field 'z' has TYPE X SIZE 4"),
    (header(size='4 4 4 4 4') + bytes(72), 'SIZE has 5 entries for 6 FIELDS'),
    (header(points=4) + bytes(96), 'POINTS 4 is not WIDTH x HEIGHT = 3 x 1'),
    (header(fields='x y intensity ring lidar_info w') + bytes(72), 'no z field'),
    (header(data='lzma') + bytes(72), "DATA 'lzma'"),
    (header(data='ascii') + b'1 2 3 4 5 6\n1 2 3 4 5 six\n1 2 3 4 5 6\n',
     'ascii data is not 6 numbers per row'),
    (header()[:60], 'no DATA line in the header'),
    (b'', 'empty file'),
])
def test_malformed_names_file_frame_and_problem(tmp_path, content, problem):
    path = write(tmp_path, content)
    with pytest.raises(DataError, match=f'point cloud {re.escape(path)} \\(frame {TOKEN}\\): '
                       f'.*{re.escape(problem)}.*verify_dataset.py --with-lidar'):
        load_points(path, frame=TOKEN)


def lzf_literals(data):
    """LZF stream of `data` as literal runs only (control byte = run length - 1, <= 32)."""
    return b''.join(bytes([len(data[i:i + 32]) - 1]) + data[i:i + 32]
                    for i in range(0, len(data), 32))


def test_binary_compressed_with_literal_runs(tmp_path):
    field_major = np.array(ROWS, dtype='<f4').T.tobytes()  # each field of all points in turn
    packed = lzf_literals(field_major)
    path = write(tmp_path, header(data='binary_compressed')
                 + struct.pack('<II', len(packed), len(field_major)) + packed)
    np.testing.assert_array_equal(load_points(path), np.array(ROWS, dtype=np.float32))
    cut = write(tmp_path, header(data='binary_compressed')
                + struct.pack('<II', len(packed), len(field_major)) + packed[:-10], 'cut.pcd')
    with pytest.raises(DataError, match=f'{re.escape(cut)} \\(frame {TOKEN}\\): truncated: '
                       f'{len(packed) - 10} compressed bytes'):
        load_points(cut, frame=TOKEN)


def test_lzf_back_references():
    stream = (b'\x02abc'  # literal 'abc'
              + bytes([4 << 5, 2])  # 6 bytes from 3 back, overlapping: 'abcabc'
              + bytes([7 << 5, 11, 8])  # long form: 7 + 11 + 2 = 20 bytes from 9 back
              + b'\x00Z'
              + b'\x0ahello world' + bytes([3 << 5, 10]))  # 5 bytes from 11 back: 'hello'
    expected = b'abcabcabc' + (b'abcabcabc' * 3)[:20] + b'Z' + b'hello world' + b'hello'
    assert lzf_decompress(stream, len(expected)) == expected
    with pytest.raises(ValueError, match='before the start'):
        lzf_decompress(b'\x00a' + bytes([1 << 5, 5]), 4)
    with pytest.raises(ValueError, match='decodes to 3 bytes, the header says 4'):
        lzf_decompress(b'\x02abc', 4)


@pytest.fixture(scope='module')
def lidar_root(tmp_path_factory):
    """1 log x 2 frames with lidar sweeps, collected into infos."""
    return make_lidar_root(tmp_path_factory, 'lidar-root', (32, 18), seed=2)


def test_load_points_on_a_synthetic_frame(lidar_root):
    dataset = DATASETS.build(dict(type='OpenSceneOccDataset', data_root=str(lidar_root),
                                  ann_file=str(lidar_root / 'infos.pkl'), pipeline=[]))
    info = dataset.get_data_info(1)
    expected_path = (lidar_root / 'openscene-v1.1/sensor_blobs/mini' / info['log_name']
                     / 'MergedPointCloud' / f"{info['token']}.pcd")
    assert info['lidar_path'] == str(expected_path)
    raw = expected_path.read_bytes()
    reference = np.frombuffer(raw.split(b'DATA binary\n', 1)[1], '<f4').reshape(-1, 6)
    out = LoadPoints(use_dims=(0, 1, 2, 4))(dict(info))
    assert out['points'].dtype == np.float32 and len(out['points']) > 15000
    np.testing.assert_array_equal(out['points'], reference[:, [0, 1, 2, 4]])
    assert set(np.unique(out['points'][:, 3])) == set(range(32))  # the ring column
    with pytest.raises(DataError, match=f'{re.escape(str(expected_path))} \\(frame '
                       f"{info['token']}\\) has 6 columns \\(x y z intensity ring lidar_info\\)"):
        LoadPoints(use_dims=(0, 1, 2, 6))(dict(info))
    with pytest.raises(ValueError, match='must start with 0, 1, 2'):
        LoadPoints(use_dims=(3, 0, 1))


def test_no_lidar_path_raises_or_is_skipped_and_counted(monkeypatch):
    import occnet.datasets.transforms.loading as loading
    with pytest.raises(DataError, match=f'frame {TOKEN} names no point cloud.*collect_data.py'):
        LoadPoints()(dict(token=TOKEN, lidar_path=None))
    logged = []
    monkeypatch.setattr(loading, 'print_log', lambda message, **kwargs: logged.append(message))
    transform = LoadPoints(use_dims=(0, 1, 2, 3), skip_missing=True, log_every=2)
    for i in range(5):
        out = transform(dict(token=f'frame{i}', lidar_path=None))
        assert out['points'].shape == (0, 4) and out['points'].dtype == np.float32
    assert transform.num_missing == 5
    assert [re.search(r'\((\d+) such frames', m).group(1) for m in logged] == ['1', '2', '4']
    assert 'frame0 names no point cloud' in logged[0]


@pytest.mark.parametrize('flip_x, flip_y', [(True, False), (False, True), (True, True)])
def test_flipped_points_project_to_the_original_pixels(flip_x, flip_y):
    # a camera 1 m above the lidar looking along +x: u = 80 - 100 y / x, v = 45 - 100 (z - 1) / x
    cam = dict(sensor2lidar_rotation=np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float),
               sensor2lidar_translation=np.array([0.0, 0.0, 1.0]),
               cam_intrinsic=np.array([[100, 0, 80], [0, 100, 45], [0, 0, 1]], float))
    lidar2img = np.stack([lidar2img_matrix(cam)] * 2)
    points = np.array([[10.0, 2.0, 0.5, 40.0], [25.0, -5.0, -1.0, 7.0]], dtype=np.float32)
    uv, depth = project_points(points[:, :3], lidar2img[0])
    np.testing.assert_allclose(uv[0], [80 - 100 * 2 / 10, 45 - 100 * (0.5 - 1) / 10])
    results = dict(points=points, lidar2img=lidar2img, aug_seed=0)
    out = RandomFlipBEV(flip_x_ratio=float(flip_x), flip_y_ratio=float(flip_y))(results)
    assert out['bev_flip'] == (flip_x, flip_y)
    sign = np.array([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0, 1.0, 1.0], np.float32)
    np.testing.assert_array_equal(out['points'], points * sign)
    assert out['points'] is not points  # the input array is left as it was
    for n in range(2):
        flipped_uv, flipped_depth = project_points(out['points'][:, :3], out['lidar2img'][n])
        np.testing.assert_allclose(flipped_uv, uv, atol=1e-4)
        np.testing.assert_allclose(flipped_depth, depth, atol=1e-5)
