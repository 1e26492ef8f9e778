"""Building OpenScene's v1.1 `sensor_blobs/<split>/` tree as symlinks into a nuPlan download.

OpenScene's camera and lidar blobs are nuPlan's 2 Hz key frames under the same relative paths
(`<log_name>/CAM_F0/<token>.jpg`, `<log_name>/MergedPointCloud/<token>.pcd`), so owners of
nuPlan's `sensor_blobs/` can link the files the v1.1 metadata names instead of downloading them.
Only paths read from the metadata are touched; the nuPlan tree is never walked.
"""
import os

from occnet.datasets.collect import V11, read_v11_log, v11_log_files
from occnet.datasets.infos import DataError
from occnet.descriptions import OPENSCENE

LINKED, PRESENT, REPLACED, CONFLICT, MISSING = (
    'linked', 'present', 'replaced', 'conflict', 'missing')
OUTCOMES = (LINKED, PRESENT, REPLACED, CONFLICT, MISSING)
MAX_EXAMPLES = 10


def sensor_blobs_dir(data_root, split):
    """`<data_root>/openscene-v1.1/sensor_blobs/<split>`: where the links go."""
    return os.path.join(data_root, V11, 'sensor_blobs', split)


def blob_relative_path(path, split, source):
    """A metadata `data_path` / `lidar_path` made relative to `sensor_blobs/<split>/`.

    Accepts the plain v1.1 form `<log>/<CAM>/<token>.jpg` and forms that still name a
    `sensor_blobs/[<split>/]` folder. Raises DataError (naming `source`, the metadata pickle)
    for absolute paths and paths that climb out of the tree with '..'."""
    rel = path.replace('\\', '/')
    if 'sensor_blobs/' in rel:
        rel = rel[rel.index('sensor_blobs/') + len('sensor_blobs/'):]
        rel = rel[len(split) + 1:] if rel.startswith(f'{split}/') else rel
    rel = os.path.normpath(rel)
    if os.path.isabs(rel) or rel == '.' or rel.split(os.sep)[0] == '..':
        raise DataError(f'{source}: sensor path {path!r} is not relative to sensor_blobs/'
                        f'{split}/, so it cannot be linked from the nuPlan tree; link such '
                        f'files by hand or fix the metadata')
    return rel


def frame_blob_paths(frame, split, source, with_lidar=False):
    """sensor_blobs-relative paths of one frame: its 8 camera images in
    OPENSCENE.camera_names order, then its merged point cloud when `with_lidar`."""
    cams = frame.get('cams') or {}
    missing = [cam for cam in OPENSCENE.camera_names if 'data_path' not in cams.get(cam, {})]
    if missing:
        raise DataError(f'{source}: frame {frame.get("token")} has no data_path for '
                        f'{missing}; run tools/verify_dataset.py on the data root')
    paths = [cams[cam]['data_path'] for cam in OPENSCENE.camera_names]
    if with_lidar:
        if not frame.get('lidar_path'):
            raise DataError(f'{source}: frame {frame.get("token")} has no lidar_path; drop '
                            f'--with-lidar to link cameras only')
        paths.append(frame['lidar_path'])
    return [blob_relative_path(path, split, source) for path in paths]


def _points_to(link, target):
    """Whether symlink `link` leads to `target` (same text after normalising, or same file)."""
    text = os.readlink(link)
    if not os.path.isabs(text):
        text = os.path.join(os.path.dirname(link), text)
    if os.path.normpath(text) == os.path.normpath(target):
        return True
    return os.path.realpath(link) == os.path.realpath(target)


def link_one(dest, src, force=False, dry_run=False):
    """Make `dest` a symlink to the absolute path `src` unless the right file is there.

    Returns one of OUTCOMES:
        present: dest is a real file, or a link to src (src exists); left alone.
        missing: src does not exist (nothing created; an existing dest link is left alone).
        conflict: dest is a link elsewhere (or a folder) and `force` is off; left alone.
        replaced: dest was a link elsewhere and `force` replaced it (atomically).
        linked: dest did not exist and was created.
    With `dry_run` nothing is created or replaced; the outcome is what would happen.
    """
    is_link = os.path.islink(dest)
    if not is_link and os.path.isfile(dest):
        return PRESENT
    if not os.path.isfile(src):
        return MISSING
    if is_link and _points_to(dest, src):
        return PRESENT
    if os.path.lexists(dest) and (not is_link or not force):
        return CONFLICT
    if not dry_run:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f'{dest}.link-tmp'
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(src, tmp)
        os.replace(tmp, dest)
    return REPLACED if is_link else LINKED


def new_report(nuplan_root, data_root, split, dry_run):
    """An empty report: counts per outcome, examples and missing counts per log."""
    return {'nuplan_sensor_root': nuplan_root, 'data_root': data_root, 'split': split,
            'dry_run': dry_run, 'logs': 0, 'frames': 0, 'files': 0,
            **{outcome: 0 for outcome in OUTCOMES},
            'missing_examples': [], 'missing_per_log': {}, 'conflict_examples': []}


def _record(report, outcome, log_name, dest, src):
    report[outcome] += 1
    report['files'] += 1
    if outcome == MISSING:
        report['missing_per_log'][log_name] = report['missing_per_log'].get(log_name, 0) + 1
        if len(report['missing_examples']) < MAX_EXAMPLES:
            report['missing_examples'].append(src)
    elif outcome == CONFLICT and len(report['conflict_examples']) < MAX_EXAMPLES:
        target = os.readlink(dest) if os.path.islink(dest) else '(not a link)'
        report['conflict_examples'].append(f'{dest} -> {target}')


def link_split(nuplan_root, data_root, split, with_lidar=False, force=False, dry_run=False,
               logs=None, progress=None):
    """Link every sensor file the v1.1 metadata of `split` names from the nuPlan tree.

    Args:
        nuplan_root: nuPlan's `sensor_blobs/` folder (holds `<log>/CAM_F0/...`).
        data_root: folder holding `openscene-v1.1/meta_datas/<split>/*.pkl`; links are made
            under `openscene-v1.1/sensor_blobs/<split>/` with absolute targets.
        with_lidar: also link `<log>/MergedPointCloud/<token>.pcd`.
        force: replace links that point elsewhere (otherwise they are conflicts).
        dry_run: create nothing; the report says what would happen.
        logs: optional set of log names to link (others are not read).
        progress: callable(done_logs, total_logs) after each log.
    Returns:
        report dict: counts per outcome (linked, present, replaced, conflict, missing), logs,
        frames, files, first MAX_EXAMPLES missing nuPlan paths and conflicting links, and
        {log_name: missing files} for logs with any missing.
    """
    nuplan_root = os.path.abspath(nuplan_root)
    if not os.path.isdir(nuplan_root):
        raise DataError(f'nuPlan sensor folder {nuplan_root} does not exist; pass the '
                        f'folder holding <log_name>/CAM_F0/... (nuplan-v1.1/sensor_blobs)')
    files = v11_log_files(data_root, split)
    if not files:
        raise DataError(f'no metadata under {os.path.join(data_root, V11, "meta_datas", split)}'
                        f'; point --data-root at the folder holding openscene-v1.1/')
    if logs is not None:
        unknown = sorted(set(logs) - set(files))
        if unknown:
            raise DataError(f'{len(unknown)} requested logs have no metadata in split '
                            f'{split}, e.g. {unknown[:3]}')
        files = {name: path for name, path in files.items() if name in logs}
    blobs = sensor_blobs_dir(data_root, split)
    report = new_report(nuplan_root, os.path.abspath(data_root), split, dry_run)
    for done, (log_name, source) in enumerate(files.items(), start=1):
        frames = read_v11_log(source)
        for frame in frames:
            for rel in frame_blob_paths(frame, split, source, with_lidar):
                dest, src = os.path.join(blobs, rel), os.path.join(nuplan_root, rel)
                _record(report, link_one(dest, src, force, dry_run), log_name, dest, src)
        report['logs'] += 1
        report['frames'] += len(frames)
        if progress is not None:
            progress(done, len(files))
    return report


def missing_hint(report):
    """A sentence explaining a report's missing files, or '' when none are missing."""
    if not report[MISSING]:
        return ''
    if report[MISSING] == report['files']:
        return (f'none of the {report["files"]} files exist under '
                f'{report["nuplan_sensor_root"]}; is it the folder holding '
                f'<log_name>/CAM_F0/<token>.jpg (nuplan-v1.1/sensor_blobs)?')
    return ('they are absent from the nuPlan download; download those logs from nuPlan, or '
            'their OpenScene sensor blobs')
