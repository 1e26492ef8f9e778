"""Dataset statistics: frames per group, voxels per class, frequencies and class weights.

Class weights for class-weighted losses follow ENet's inverse log frequency (Paszke et al.,
"ENet", 2016): w_c = 1 / ln(1.02 + f_c), with f_c the share of class c among all counted
voxels (free included). The weight lies in (1.43, 50.5]: about 1.4 for a class filling every
voxel, 50.5 for a vanishingly rare one. Classes with no voxel at all (OpenScene's unused
placeholder slots 1-3) get weight 0, so a loss ignores them.

Classes are those of a dataset description (`dataset`: a name, an OccDescription or a
metainfo dict; occnet/descriptions.py): labels 0..free_index, free last. Frames and labels are
read through occnet.datasets.readers: OpenScene's sparse labels with the camera mask of their
invalid-voxel files, Occ3D-nuScenes' labels.npz with its `mask_camera`.
"""
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
import os

import numpy as np

from occnet.datasets.collect import iter_logs, v11_log_files
from occnet.datasets.infos import DataError
from occnet.datasets.readers import label_path, read_dense_label, read_frames
from occnet.descriptions import get_description


def stat_class_names(dataset='openscene'):
    """Name of every label 0..free_index of the dataset (index = class id), 'free' last."""
    return tuple(get_description(dataset).class_names) + ('free',)


WEIGHT_OFFSET = 1.02
CLASS_WEIGHT_FORMULA = (f'w_c = 1 / ln({WEIGHT_OFFSET} + f_c), f_c = voxels of class c / all '
                        f'counted voxels (free included); w_c = 0 where class c has no voxel '
                        f'(ENet inverse log frequency, Paszke et al. 2016)')
FRAME_KEYS = ('token', 'log_name', 'scene_token', 'scene_name', 'occ_gt_final_path',
              'occ_invalid_path', 'occ_gt_path')


def read_infos(path, dataset='openscene'):
    """Frame dicts (FRAME_KEYS only) of an infos pickle of `dataset` (readers.read_frames:
    tools/collect_data.py's list for OpenScene, any Occ3D flavour for occ3d_nuscenes)."""
    return [{key: frame.get(key) for key in FRAME_KEYS}
            for frame in read_frames(path, dataset)]


def split_frames(data_root, split, progress=None):
    """Frame dicts (FRAME_KEYS only, label paths relative to data_root) of every log of a
    split's raw metadata, read through `iter_logs`; progress(done_logs, total_logs)."""
    total = len(v11_log_files(data_root, split))
    frames = []
    for done, (_, _, log_frames) in enumerate(iter_logs(data_root, split), start=1):
        frames.extend({key: frame.get(key) for key in FRAME_KEYS} for frame in log_frames)
        if progress is not None:
            progress(done, max(total, done))
    return frames


def evenly_spaced(items, max_items):
    """At most `max_items` items at evenly spaced positions (first and last included);
    all items when max_items is None or not smaller than len(items)."""
    if max_items is None or max_items >= len(items):
        return list(items)
    if max_items < 1:
        raise ValueError(f'max_items must be >= 1, got {max_items}')
    positions = np.unique(np.linspace(0, len(items) - 1, max_items).round().astype(int))
    return [items[i] for i in positions]


def frame_class_counts(data_root, frame, dataset='openscene'):
    """Voxels per class (num_classes,) int64 of one labelled frame, and the same over its
    camera-visible voxels (readers.read_dense_label's mask_camera; None for an OpenScene frame
    without an `occ_invalid_path`). Raises DataError naming the file on a bad or missing
    label (a voxel or class outside the dataset's grid or labels)."""
    num_classes = get_description(dataset).num_classes
    labels, visible = read_dense_label(frame, data_root, dataset)
    counts = np.bincount(labels.ravel(), minlength=num_classes).astype(np.int64)
    if visible is None:
        return counts, None
    return counts, np.bincount(labels[visible], minlength=num_classes).astype(np.int64)


def _count_job(job):
    return frame_class_counts(*job)


def count_voxels(frames, data_root, workers=1, progress=None, dataset='openscene'):
    """Sum per-class voxel counts over labelled frames, reading labels in `workers` processes.

    Args:
        frames: labelled frame dicts (`token` and the label keys of readers.LABEL_KEYS,
            OpenScene's `occ_invalid_path`).
        data_root: folder relative label paths start from.
        progress: callable(done_frames, total_frames).
        dataset: the labels' dataset (name, OccDescription or metainfo dict).
    Returns:
        counts (num_classes,) int64 over all voxels, counts_masked (num_classes,) int64 over
        the visible voxels of frames with a camera mask, number of such frames.
    """
    num_classes = get_description(dataset).num_classes
    counts = np.zeros(num_classes, dtype=np.int64)
    counts_masked = np.zeros(num_classes, dtype=np.int64)
    num_masked = 0
    jobs = [(data_root, frame, dataset) for frame in frames]

    def add(done, result):
        nonlocal num_masked
        counts[:] += result[0]
        if result[1] is not None:
            counts_masked[:] += result[1]
            num_masked += 1
        if progress is not None:
            progress(done, len(jobs))

    if workers > 1 and len(jobs) > 1:
        chunk = max(1, min(16, len(jobs) // (4 * workers)))
        context = multiprocessing.get_context('fork')
        try:  # an executor raises BrokenProcessPool when a worker dies, instead of hanging
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
                for done, result in enumerate(pool.map(_count_job, jobs, chunksize=chunk), 1):
                    add(done, result)
        except BrokenProcessPool as err:
            raise DataError(f'a worker process died ({err}); out of memory? retry with fewer '
                            f'--workers') from err
    else:
        for done, job in enumerate(jobs, start=1):
            add(done, _count_job(job))
    return counts, counts_masked, num_masked


def class_weights(counts):
    """(num_classes,) float64 weights 1 / ln(WEIGHT_OFFSET + f_c) from voxel counts; 0 for
    classes with no voxel (see CLASS_WEIGHT_FORMULA)."""
    counts = np.asarray(counts, dtype=np.float64)
    frequencies = counts / max(counts.sum(), 1.0)
    weights = 1.0 / np.log(WEIGHT_OFFSET + frequencies)
    return np.where(counts > 0, weights, 0.0)


def class_table(counts, suffix='', dataset='openscene'):
    """Counts, frequencies (share of all counted voxels, 0..1) and weights, each as a
    {class name: value} dict (names of `stat_class_names(dataset)`) and a list indexed by
    class id, keys ending in `suffix`. counts: (num_classes,) voxels per label."""
    names = stat_class_names(dataset)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (len(names),):
        raise ValueError(f'class_table: counts of shape {counts.shape} for the '
                         f'{len(names)} labels of {get_description(dataset).name} '
                         f'({names[0]} .. {names[-1]}); count with the same dataset')
    total = int(counts.sum())
    columns = {'voxel_counts': [int(c) for c in counts],
               'frequencies': [float(c) / total if total else 0.0 for c in counts],
               'class_weights': [float(w) for w in class_weights(counts)]}
    table = {f'voxels_total{suffix}': total}
    for key, values in columns.items():
        table[f'{key}{suffix}'] = dict(zip(names, values))
        table[f'{key}_list{suffix}'] = values
    return table


def frame_numbers(frames):
    """logs (0 for frames without a `log_name`, as nuScenes infos), scenes, frames and
    labelled frames (naming a label file, readers.label_path) of frame dicts."""
    return {'logs': len({f.get('log_name') for f in frames} - {None}),
            'scenes': len({f.get('scene_token') for f in frames}),
            'frames': len(frames),
            'labelled_frames': sum(label_path(f) is not None for f in frames)}


def group_stats(frames, data_root, max_frames=None, workers=1, progress=None,
                dataset='openscene'):
    """Statistics of one group of frames (an infos file or a split).

    Args:
        frames: frame dicts (FRAME_KEYS).
        max_frames: count labels of at most this many labelled frames, evenly spaced.
        dataset: the labels' dataset (name, OccDescription or metainfo dict): grid shape,
            label range and class names.
    Returns:
        dict: frame_numbers, frames_counted, frames_masked, class_table of all voxels and,
        when any counted frame has a camera mask, class_table of the visible voxels (keys
        ending in `_masked`).
    """
    labelled = [f for f in frames if label_path(f) is not None]
    counted = evenly_spaced(labelled, max_frames)
    counts, counts_masked, num_masked = count_voxels(counted, data_root, workers, progress,
                                                     dataset)
    stats = {**frame_numbers(frames), 'frames_counted': len(counted),
             'frames_masked': num_masked, **class_table(counts, dataset=dataset)}
    if num_masked:
        stats.update(class_table(counts_masked, suffix='_masked', dataset=dataset))
    return stats


def format_group_table(name, stats):
    """Text table of one group (`group_stats`; its classes, in label order): class, voxels,
    frequency %, weight (and the masked columns when present), then the frame numbers."""
    masked = 'voxel_counts_list_masked' in stats
    names = list(stats['voxel_counts'])
    width = max(16, 1 + max(map(len, names)))
    header = f'{"class":<{width}}{"voxels":>15}{"freq %":>10}{"weight":>9}'
    if masked:
        header += f'{"visible":>15}{"freq %":>10}{"weight":>9}'
    logs = f'{stats["logs"]} logs, ' if stats['logs'] else ''
    lines = [f'{name}: {logs}{stats["scenes"]} scenes, {stats["frames"]} '
             f'frames, {stats["labelled_frames"]} labelled, {stats["frames_counted"]} counted'
             + (f', {stats["frames_masked"]} with camera mask' if masked else ''),
             header, '-' * len(header)]
    for idx, class_name in enumerate(names):
        line = (f'{class_name:<{width}}{stats["voxel_counts_list"][idx]:>15,}'
                f'{100 * stats["frequencies_list"][idx]:>10.4f}'
                f'{stats["class_weights_list"][idx]:>9.3f}')
        if masked:
            line += (f'{stats["voxel_counts_list_masked"][idx]:>15,}'
                     f'{100 * stats["frequencies_list_masked"][idx]:>10.4f}'
                     f'{stats["class_weights_list_masked"][idx]:>9.3f}')
        lines.append(line)
    return '\n'.join(lines)


def group_name(infos_path):
    """Group name of an infos file: its file name without extension."""
    return os.path.splitext(os.path.basename(infos_path))[0]
