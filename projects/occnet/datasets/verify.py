"""Checking a download against its metadata (the logic of tools/verify_dataset.py).

Every file the metadata names is checked at exactly that path (sensor_blobs is never listed):
images exist and are whole JPEGs; OpenScene's occupancy, flow and invalid-voxel files, or
Occ3D-nuScenes' `labels.npz`, load with the right shapes, dtypes and ranges; with `lidar`,
point clouds parse (OpenScene's PCD: x y z and at least one point; nuScenes' `.pcd.bin`: a
whole number of 5-float32 points). Problems are counted per check and listed with the frame
token, so a user can tell which archive to download or extract again. Frames and labels are
read through occnet.datasets.readers.
"""
import os
import zipfile
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import NamedTuple, Optional

import numpy as np

from occnet.datasets.collect import (V10, V11, join_frame, label_index, metadata_files,
                                     read_v10_infos, read_v11_log)
from occnet.datasets.frame_checks import frame_problems, has_file_paths
from occnet.datasets.infos import (VERIFY_HINT, DataError, MissingFileError, load_infos,
                                   resolve)
from occnet.datasets.labels import load_flow, load_npy, load_occupancy, load_visible_mask
from occnet.datasets.occ3d import LABEL_KEYS as OCC3D_LABEL_KEYS
from occnet.datasets.occ3d import load_occ3d_label
from occnet.datasets.pointcloud import LIDAR_HINT, load_points
from occnet.datasets.readers import frames_from_infos, infos_dataset, label_path
from occnet.datasets.transforms.loading import JPEG_EOI, JPEG_SOI, JPEG_TAIL_BYTES, read_jpeg
from occnet.descriptions import get_description

MAX_LISTED = 100_000  # issues kept per check (counts are always exact)
IN_FLIGHT_PER_WORKER = 8
OPENSCENE_ONLY = ('openscene',)


class Check(NamedTuple):
    title: str
    fix: str  # OpenScene's; FIXES holds another dataset's where it differs
    is_error: bool = True
    group: str = 'data'  # 'data': metadata, images, labels; 'lidar'; 'archives': --md5
    datasets: tuple = ('openscene', 'occ3d_nuscenes')  # whose files can have this problem


CHECKS = {
    'metadata_unreadable': Check(
        'metadata pickles missing or unreadable',
        'download and extract the metadata archive again (a truncated pickle means an '
        'interrupted download or extraction)'),
    'frame_bad_metadata': Check(
        'frames with bad metadata',
        'tools/collect_data.py --skip-bad leaves these frames out of the infos'),
    'image_missing': Check(
        'images missing',
        'extract the camera archives holding these logs into sensor_blobs/ (or fix the '
        'symlinks to your nuPlan sensor data)'),
    'image_unreadable': Check(
        'images unreadable',
        'truncated or corrupt JPEGs: extract the camera archive holding them again'),
    'label_missing': Check(
        'label files missing',
        'extract the openscene-v1.0 occupancy archives (occupancy/<split>/<scene>/occ_gt/)'),
    'occ_bad': Check(
        'occupancy files bad (shape, dtype, range)',
        'extract the occupancy archive holding them again', datasets=OPENSCENE_ONLY),
    'flow_bad': Check(
        'flow files bad (shape, dtype, rows vs occ, NaN)',
        'extract the occupancy archive holding them again', datasets=OPENSCENE_ONLY),
    'invalid_bad': Check(
        'invalid-voxel files bad',
        'extract the occupancy archive holding them again', datasets=OPENSCENE_ONLY),
    'labels_npz_bad': Check(
        'labels.npz bad (unreadable, keys, shape, dtype, classes)',
        'truncated or not the release\'s files: extract the Occ3D-nuScenes gts archive '
        'into the data root again', datasets=('occ3d_nuscenes',)),
    'lidar_unnamed': Check(
        'frames naming no point cloud',
        'collect the infos again with tools/collect_data.py (infos written before it kept '
        "lidar_path have none), or the metadata has no lidar", group='lidar'),
    'lidar_missing': Check(
        'point clouds missing',
        'extract the lidar (MergedPointCloud) archives holding these logs into sensor_blobs/ '
        '(or tools/link_nuplan.py --with-lidar)', group='lidar'),
    'lidar_unreadable': Check(
        'point clouds unreadable (truncated, malformed, no points)',
        'download or extract the lidar archive holding them again', group='lidar'),
    'archive_missing': Check(
        'archives missing',
        'download them next to the checksum file, or pass --archive-dir', group='archives'),
    'archive_mismatch': Check(
        'archives with a wrong md5',
        'download them again (incomplete or corrupt download)', group='archives'),
    'frame_unlabelled': Check(
        'frames without a label',
        'normal for up to ~2% of frames; tools/collect_data.py leaves them out of training',
        is_error=False, datasets=OPENSCENE_ONLY),
}
FIXES = {'occ3d_nuscenes': {
    'metadata_unreadable': 'download the Occ3D infos again, or write them with '
                           'tools/create_occ3d_infos.py',
    'frame_bad_metadata': 'write the infos again with tools/create_occ3d_infos.py',
    'image_missing': 'extract the nuScenes camera archives (samples/CAM_*/) into the data '
                     'root, the nuScenes root the infos paths start from',
    'image_unreadable': 'truncated or corrupt JPEGs: extract the nuScenes archive holding '
                        'them again',
    'label_missing': 'extract the Occ3D-nuScenes gts archive into the data root '
                     '(gts/<scene>/<token>/labels.npz), or fix --data-root',
    'lidar_unnamed': 'write the infos with tools/create_occ3d_infos.py (they keep lidar_path)',
    'lidar_missing': 'extract the nuScenes lidar archives (samples/LIDAR_TOP/) into the data '
                     'root',
    'lidar_unreadable': 'download or extract the nuScenes archive holding them again'}}


def check_fix(check, dataset='openscene'):
    """The fix of a check for a dataset's files (FIXES, else the check's own)."""
    return FIXES.get(dataset, {}).get(check, CHECKS[check].fix)


class Issue(NamedTuple):
    check: str
    path: str
    token: Optional[str]
    reason: str


class Report:
    """Exact counts per check, up to `max_listed` issues per check, and what was checked."""

    def __init__(self, max_listed=MAX_LISTED):
        self.counts = dict.fromkeys(CHECKS, 0)
        self.issues = {check: [] for check in CHECKS}
        self.checked = Counter()
        self.info = {}
        self.max_listed = max_listed

    def add(self, check, path, token, reason):
        self.extend([Issue(check, path, token, reason)])

    def extend(self, issues):
        for issue in issues:
            self.counts[issue.check] += 1
            if len(self.issues[issue.check]) < self.max_listed:
                self.issues[issue.check].append(issue)

    @property
    def num_errors(self):
        return sum(n for check, n in self.counts.items() if CHECKS[check].is_error)

    @property
    def ok(self):
        return self.num_errors == 0

    def listed(self, check):
        """Kept issues of one check, sorted by path then token."""
        return sorted(self.issues[check], key=lambda i: (i.path, str(i.token)))

    def to_dict(self):
        return {'ok': self.ok, 'num_errors': self.num_errors, **self.info,
                'checked': dict(self.checked), 'counts': dict(self.counts),
                'max_listed': self.max_listed,
                'issues': {check: [i._asdict() for i in self.listed(check)]
                           for check in CHECKS if self.issues[check]}}


def error_reason(err):
    """A DataError's message without the 'run verify_dataset' hint (we are that tool)."""
    text = str(err)
    for hint in (f' ({VERIFY_HINT})', f'; {VERIFY_HINT}', f', {VERIFY_HINT}', f' ({LIDAR_HINT})'):
        text = text.replace(hint, '')
    return text


def image_problem(path, decode=False, token=None, cam=None):
    """(check, reason) of one camera image, or None when it is a whole JPEG.

    The cheap test reads 2 + JPEG_TAIL_BYTES bytes: a JPEG starts with the SOI marker FF D8
    and its last JPEG_TAIL_BYTES hold the EOI marker FF D9 (the test the image loader makes),
    which a truncated download lacks. `decode` also decodes it as training does
    (transforms.loading.read_jpeg; token and cam only name the frame in its message)."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return 'image_missing', ('broken symlink' if os.path.islink(path) else 'file not found')
    except OSError as err:
        return 'image_unreadable', f'cannot stat: {err}'
    if size == 0:
        return 'image_unreadable', 'empty file (0 bytes)'
    try:
        with open(path, 'rb') as f:
            head = f.read(2)
            f.seek(max(size - JPEG_TAIL_BYTES, 0))
            tail = f.read()
    except OSError as err:
        return 'image_unreadable', f'cannot read: {err}'
    if head != JPEG_SOI:
        return 'image_unreadable', f'not a JPEG: starts with {head.hex()}, expected ffd8'
    if JPEG_EOI not in tail:
        return 'image_unreadable', f'truncated JPEG: no end-of-image marker ffd9 ({size} bytes)'
    if decode:
        try:
            read_jpeg(path, token, cam)
        except DataError as err:
            return 'image_unreadable', error_reason(err)
    return None


def lidar_problem(path, token=None):
    """(check, reason) of one point cloud, or None when it parses (pointcloud.load_points:
    nuPlan PCD, or a nuScenes `.pcd.bin` of whole 5-float32 points), has x y z and at least
    one point."""
    if not os.path.isfile(path):
        return 'lidar_missing', ('broken symlink' if os.path.islink(path) else 'file not found')
    try:
        points = load_points(path, token)
    except DataError as err:
        return 'lidar_unreadable', error_reason(err)
    except OSError as err:
        return 'lidar_unreadable', f'cannot read: {err}'
    if not len(points):
        return 'lidar_unreadable', 'no points (POINTS 0)'
    return None


def load_flow_rows(path, token):
    """Flow rows checked to be float (N, 2) only: for when the occ file, which fixes N, is
    itself missing or bad (labels.load_flow checks the alignment otherwise)."""
    flow = load_npy(path, token, 'flow file')
    if flow.ndim != 2 or flow.shape[1] != 2 or not np.issubdtype(flow.dtype, np.floating):
        raise DataError(f'flow {path} (frame {token}) has shape {flow.shape} dtype '
                        f'{flow.dtype}; expected float (N, 2) [vx, vy]')
    return flow


def load_or_issue(load, path, token, bad_check):
    """(load(), None), or (None, Issue) when it raises: label_missing for a missing file,
    `bad_check` for any other DataError."""
    try:
        return load(), None
    except MissingFileError as err:
        return None, Issue('label_missing', path, token, error_reason(err))
    except DataError as err:
        return None, Issue(bad_check, path, token, error_reason(err))


def npz_dtype_problem(path):
    """Why the arrays of an Occ3D labels.npz that load_occ3d_label read are not the release's
    dtypes (semantics uint8; masks uint8, or bool as some converters write), or None. Reads
    only the .npy headers inside the archive."""
    with zipfile.ZipFile(path) as archive:
        for key in OCC3D_LABEL_KEYS:
            with archive.open(f'{key}.npy') as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                               np.lib.format.read_array_header_2_0)
                dtype = read_header(f)[2]
            allowed = (np.uint8,) if key == 'semantics' else (np.uint8, np.bool_)
            if dtype not in allowed:
                return (f'Occ3D label {path}: `{key}` is {dtype}, expected '
                        f"{' or '.join(np.dtype(a).name for a in allowed)}")
    return None


def occ3d_label_issues(path, token, description):
    """Issues of one Occ3D labels.npz: missing, or unreadable, lacking a key, of another
    shape than the grid, a class above free_index (load_occ3d_label) or another dtype."""
    _, issue = load_or_issue(lambda: load_occ3d_label(path, description), path, token,
                             'labels_npz_bad')
    if issue is None:
        problem = npz_dtype_problem(path)
        issue = problem and Issue('labels_npz_bad', path, token, problem)
    return [issue] if issue else []


def label_issues(occ_path, flow_path, invalid_path, token):
    """Issues of one labelled frame's files (flow_path / invalid_path may be None).

    occ: integer (N, 2) [index1d, class] rows in range; flow: finite float (N, 2) with the
    occ file's N; invalid: integer 1-D voxel indices in range (the checks of labels.py)."""
    occ, occ_issue = load_or_issue(lambda: load_occupancy(occ_path, token, dense=False),
                                   occ_path, token, 'occ_bad')
    issues = [occ_issue]
    if flow_path is not None:
        load = ((lambda: load_flow(flow_path, token, occ)) if occ is not None else
                (lambda: load_flow_rows(flow_path, token)))
        issues.append(load_or_issue(load, flow_path, token, 'flow_bad')[1])
    if invalid_path is not None:
        issues.append(load_or_issue(lambda: load_visible_mask(invalid_path, token),
                                    invalid_path, token, 'invalid_bad')[1])
    return [issue for issue in issues if issue is not None]


def frame_file_issues(frame, data_root, images=True, labels=True, decode=False, lidar=False,
                      dataset='openscene'):
    """Issues of the files one frame of `dataset` names (paths resolved against data_root):
    its cameras' images, its label files (Occ3D: `occ_gt_path`), its point cloud.

    Returns:
        issues: list of Issue.
        checked: Counter of 'images', 'labelled_frames', 'label_files', 'point_clouds'.
    """
    token, issues, checked = frame['token'], [], Counter()
    desc = get_description(dataset)
    if images:
        for cam in desc.camera_names:
            if cam not in frame['cams']:
                continue
            path = resolve(data_root, frame['cams'][cam]['data_path'])
            problem = image_problem(path, decode, token, cam)
            if problem:
                issues.append(Issue(problem[0], path, token, f'{cam}: {problem[1]}'))
            checked['images'] += 1
    if labels and frame.get('occ_gt_path'):
        issues += occ3d_label_issues(resolve(data_root, frame['occ_gt_path']), token, desc)
        checked['labelled_frames'] += 1
        checked['label_files'] += 1
    elif labels and frame.get('occ_gt_final_path') is not None:
        paths = [resolve(data_root, frame.get(key)) for key in
                 ('occ_gt_final_path', 'flow_gt_final_path', 'occ_invalid_path')]
        issues += label_issues(*paths, token)
        checked['labelled_frames'] += 1
        checked['label_files'] += sum(p is not None for p in paths)
    if lidar and frame.get('lidar_path') is not None:  # metadata_issues reports None
        path = resolve(data_root, frame['lidar_path'])
        problem = lidar_problem(path, token)
        if problem:
            issues.append(Issue(problem[0], path, token, problem[1]))
        checked['point_clouds'] += 1
    return issues, checked


def metadata_issues(frame, source, labels=True, lidar=False, dataset='openscene'):
    """frame_bad_metadata, (when labels are checked) frame_unlabelled and (when lidar is)
    lidar_unnamed issues of a frame of `dataset`."""
    token = frame.get('token') if isinstance(frame, dict) else None
    issues = []
    problems = frame_problems(frame, dataset)
    if problems:
        issues.append(Issue('frame_bad_metadata', source, token, '; '.join(problems)))
    if labels and isinstance(frame, dict) and label_path(frame) is None:
        issues.append(Issue('frame_unlabelled', source, token,
                            'no v1.0 occupancy label for this token'))
    if lidar and isinstance(frame, dict) and frame.get('lidar_path') is None:
        issues.append(Issue('lidar_unnamed', source, token, 'no lidar_path in the metadata'))
    return issues


def split_sources(data_root, split, report, labels=True):
    """(number of logs, iterator of (source pickle, frames joined to labels)) of a split.

    Reads openscene-v1.1 per-log pickles when the split has them, else the v1.0 split pickle
    (like collect.iter_logs). An unreadable pickle is reported and yields no frames, so the
    other logs are still checked; so is a missing v1.0 pickle when `labels` are checked.
    Raises DataError when the split has no metadata at all."""
    files, v10_path = metadata_files(data_root, split)
    if labels and not os.path.isfile(v10_path):
        report.add('metadata_unreadable', v10_path, None,
                   'missing: occupancy labels are joined from the openscene-v1.0 metadata '
                   '(download it and the occupancy archives, or pass --skip-labels)')
    try:
        v10 = read_v10_infos(data_root, split)
        label_paths = label_index(v10, data_root)
    except DataError as err:
        report.add('metadata_unreadable', v10_path, None, error_reason(err))
        v10, label_paths = [], {}
    layout = V11 if files else V10
    report.info.update(data_root=data_root, split=split, layout=layout, dataset='openscene')

    def joined(frames):
        return [join_frame(f, label_paths, layout, split, data_root) if has_file_paths(f) else f
                for f in frames]

    def v11_logs():
        for path in files.values():
            try:
                frames = read_v11_log(path)
            except DataError as err:
                report.add('metadata_unreadable', path, None, error_reason(err))
                yield path, []
                continue
            report.checked['logs'] += 1
            yield path, joined(frames)

    if files:
        return len(files), v11_logs()
    by_log = {}
    for frame in v10:
        by_log.setdefault(frame.get('log_name') if isinstance(frame, dict) else None,
                          []).append(frame)
    report.checked['logs'] += len(by_log)
    return len(by_log), ((v10_path, joined(frames)) for frames in by_log.values())


def infos_sources(infos_path, data_root, report, dataset=None):
    """(number of frames, iterator of (infos_path, [frame])) of an infos pickle with paths
    relative to data_root: OpenScene's collected infos (tools/collect_data.py) or any Occ3D
    flavour (readers.read_frames; a frame it cannot read is a frame_bad_metadata issue).
    dataset: its name; None: Occ3D when the infos name Occ3D labels (readers.infos_dataset).
    Sets report.info['dataset']."""
    report.info.update(data_root=data_root, infos=infos_path)
    try:
        infos = load_infos(infos_path)
    except DataError as err:
        report.add('metadata_unreadable', infos_path, None, error_reason(err))
        return 0, iter(())
    dataset = get_description(dataset or infos_dataset(infos)).name
    report.info['dataset'] = dataset
    bad_frames = []
    frames = frames_from_infos(infos, dataset, infos_path, bad_frames)
    report.checked['frames'] += len(bad_frames)
    report.extend(Issue('frame_bad_metadata', infos_path, token, error_reason(reason))
                  for token, reason in bad_frames)
    if dataset == 'openscene':
        report.checked['logs'] += len({f.get('log_name') for f in frames})
    else:
        report.checked['scenes'] += len({f.get('scene_name') for f in frames})
    return len(frames), ((infos_path, [frame]) for frame in frames)


def verify_sources(total, sources, data_root, report, workers=4, images=True, labels=True,
                   decode=False, lidar=False, progress=None):
    """Check the metadata of every frame and, on `workers` threads, the files it names.

    Args:
        total, sources: from split_sources / infos_sources (the frames' dataset:
            report.info['dataset'], OpenScene when absent).
        lidar: also check each frame's point cloud (lidar_problem).
        progress: callable(done, total) in sources, called from this thread.
    """
    if lidar:
        report.info['with_lidar'] = True
    dataset = report.info.get('dataset', 'openscene')

    def collect(futures):
        for future in futures:
            issues, checked = future.result()
            report.extend(issues)
            report.checked.update(checked)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        pending = set()
        for done, (source, frames) in enumerate(sources, start=1):
            for frame in frames:
                report.checked['frames'] += 1
                report.extend(metadata_issues(frame, source, labels, lidar, dataset))
                if not (images or labels or lidar) or not has_file_paths(frame, dataset):
                    continue
                if len(pending) >= IN_FLIGHT_PER_WORKER * max(1, workers):
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    collect(finished)
                pending.add(pool.submit(frame_file_issues, frame, data_root, images, labels,
                                        decode, lidar, dataset))
            if progress is not None and done < total:
                progress(done, total)
        collect(pending)
    if progress is not None and total:
        progress(total, total)


def verify_split(data_root, split, report=None, **kwargs):
    """Report of one split of a data root (kwargs: those of verify_sources)."""
    report = Report() if report is None else report
    total, sources = split_sources(data_root, split, report, kwargs.get('labels', True))
    verify_sources(total, sources, data_root, report, **kwargs)
    return report


def verify_infos(infos_path, data_root, report=None, dataset=None, **kwargs):
    """Report of an infos pickle whose paths are relative to data_root: OpenScene's collected
    infos or Occ3D-nuScenes' (dataset: as infos_sources; kwargs: those of verify_sources)."""
    report = Report() if report is None else report
    total, sources = infos_sources(infos_path, data_root, report, dataset)
    verify_sources(total, sources, data_root, report, **kwargs)
    return report
