"""Files and text that occupancy evaluation produces: the per-class table, the JSON summary
(`summarize_split`) and the per-frame prediction files of contract 4 (`<token>.npz`)."""
import json
import os

import numpy as np

from occnet.atomic_file import replace_atomically
from occnet.datasets.infos import resolve
from occnet.datasets.labels import load_flow

ROWS_AFTER_CLASSES = (
    ('mIoU (real classes)', 'miou'),
    ('mIoU-16 (baseline)', 'miou_16'),
    ('foreground mIoU', 'fg_miou'),
    ('geometric IoU', 'iou'),
    ('occupied precision', 'precision'),
    ('occupied recall', 'recall'),
)


def _cell(value, width):
    return f'{value:>{width}.2f}' if value is not None else f'{"-":>{width}}'


def table_columns(summary):
    """[(title, part)] columns of a summary's tables: all voxels, camera-masked, near, far."""
    columns = [('IoU %', summary)]
    if 'per_class_masked' in summary:
        columns.append(('masked %', {key[:-len('_masked')]: value for key, value in
                                     summary.items() if key.endswith('_masked')}))
    for name in ('near', 'far'):
        if name in summary:
            columns.append((f'{name} %', summary[name]))
    return columns


def table_rows(summary):
    """[(label, [value per column])]: one row per class, then the aggregate rows."""
    columns = table_columns(summary)
    rows = [(name, [part['per_class'].get(name) for _, part in columns])
            for name in summary['per_class']]
    return rows + [(label, [part.get(key) for _, part in columns])
                   for label, key in ROWS_AFTER_CLASSES if key in summary]


def format_table(summary):
    """Per-class IoU table of a summary, then mIoU, mIoU-16, geometric IoU, precision and
    recall; a column with the camera-masked figures when the summary has them, and near
    (< 25 m) / far columns when it has the range split.

    Args:
        summary: dict from `summarize_confusion` / `summarize_split` (percentages or None).
    Returns:
        multi-line str; '-' marks a class with no ground truth and no prediction.
    """
    columns = table_columns(summary)
    name_width = max(len(label) for label, _ in table_rows(summary))
    header = f'{"class":<{name_width}}' + ''.join(f'  {title:>8}' for title, _ in columns)
    rule = '-' * len(header)
    lines = [header, rule]
    num_classes = len(summary['per_class'])
    for i, (label, values) in enumerate(table_rows(summary)):
        if i == num_classes:
            lines.append(rule)
        lines.append(f'{label:<{name_width}}' + ''.join(f'  {_cell(v, 8)}' for v in values))
    counts = []
    if 'num_frames' in summary:
        counts.append(f'{summary["num_frames"]} frames')
    counts.append(f'{summary["num_voxels"]:,} voxels')
    if 'per_class_masked' in summary:
        counts.append(f'{summary["num_voxels_masked"]:,} visible voxels')
    lines.append(rule)
    lines.append(', '.join(counts))
    if 'near' in summary:
        lines.append('near: voxel centres closer than 25 m (horizontally) to the grid origin; '
                     'far: the rest')
    return '\n'.join(lines + flow_and_ray_lines(summary))


def flow_and_ray_lines(summary):
    """Lines for the flow EPE and RayIoU figures of a summary, where it has them."""
    lines = []
    if summary.get('protocol_miou') is not None and 'per_class_masked' in summary:
        lines.append(f'protocol mIoU (the dataset\'s published protocol, docs/evaluation.md): '
                     f'{summary["protocol_miou"]:.2f}')
    if summary.get('flow_epe') is not None:
        lines.append(f'Flow EPE (m/s, {summary["flow_voxels"]:,} voxels foreground in both): '
                     + ', '.join(f'{name} {summary[key]:.3f}' for name, key in (
                         ('all', 'flow_epe'), ('stationary', 'flow_epe_stationary'),
                         ('moving', 'flow_epe_moving')) if summary[key] is not None))
    if 'ray_iou' in summary:
        lines.append('RayIoU: ' + ', '.join(f'{key} {value:.2f}' for key, value in
                                            summary.items() if key.startswith('ray_iou@'))
                     + f', mean {summary["ray_iou"]:.2f}')
    if summary.get('depth_abs_rel') is not None:
        lines.append(f'Depth against LiDAR ({summary["depth_cells"]:,} cells): AbsRel '
                     f'{summary["depth_abs_rel"]:.3f}, delta < 1.25 '
                     f'{summary["depth_delta1"]:.1f}%')
    if summary.get('smear_share') is not None:
        lines.append(f'Smear: {summary["smear_share"]:.1f}% of the '
                     f'{summary["object_voxels"]:,} predicted object voxels are false and on '
                     f'a camera ray of a true object ({summary["false_object_share"]:.1f}% '
                     'are false)')
    return lines


def format_markdown(summary):
    """The table of format_table as Markdown, plus flow and RayIoU lines when present."""
    columns = table_columns(summary)
    lines = ['| class | ' + ' | '.join(title for title, _ in columns) + ' |',
             '|---|' + '---|' * len(columns)]
    for label, values in table_rows(summary):
        cells = [f'{v:.2f}' if v is not None else '-' for v in values]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append(f'{summary.get("num_frames", "?")} frames, {summary["num_voxels"]:,} voxels. '
                 'near: voxel centres closer than 25 m (horizontally) to the grid origin. '
                 'See docs/evaluation.md for the definitions.')
    for line in flow_and_ray_lines(summary):
        lines += ['', line]
    return '\n'.join(lines) + '\n'


def write_markdown(summary, path):
    """Write format_markdown(summary) to `path` atomically."""
    text = format_markdown(summary)
    replace_atomically(path, lambda f: f.write(text.encode()))


def write_json(summary, path):
    """Write a summary as indented JSON, atomically (a temporary file in the same folder,
    then a rename), creating the folder if needed. None values are written as null."""
    text = json.dumps(summary, indent=2) + '\n'
    replace_atomically(path, lambda f: f.write(text.encode()))


def prediction_path(pred_dir, token):
    """Path of the prediction file of frame `token`: `<pred_dir>/<token>.npz`."""
    return os.path.join(pred_dir, f'{token}.npz')


def save_prediction(pred_dir, token, semantics, flow=None):
    """Write one frame's prediction as `<pred_dir>/<token>.npz` (contract 4), atomically.

    Args:
        semantics: (X, Y, Z) integer classes, free_index = free (OpenScene 0..10 and 11);
            stored as uint8 `semantics`.
        flow: optional (X, Y, Z, 2) velocity m/s in the grid's frame; stored as float32
            `flow`.
    Returns:
        the path written.
    """
    arrays = {'semantics': np.asarray(semantics).astype(np.uint8, copy=False)}
    if flow is not None:
        arrays['flow'] = np.asarray(flow).astype(np.float32, copy=False)
    path = prediction_path(pred_dir, token)
    replace_atomically(path, lambda f: np.savez_compressed(f, **arrays))
    return path


def load_flow_pair(pred_dir, frame, data_root, occ_sparse):
    """(gt_flow, pred_flow), both (X, Y, Z, 2) m/s, when the infos frame has a flow label and
    its prediction file a `flow` array; else None. Label paths resolve against data_root;
    occ_sparse: the frame's (M, 2) occupancy rows (load_occupancy(..., dense=False)), which
    the flow rows are aligned with."""
    if not frame.get('flow_gt_final_path'):
        return None
    with np.load(prediction_path(pred_dir, frame['token'])) as data:
        if 'flow' not in data:
            return None
        pred_flow = data['flow']
    flow_path = resolve(data_root, frame['flow_gt_final_path'])
    return load_flow(flow_path, frame['token'], occ_sparse), pred_flow


def load_prediction(pred_dir, token):
    """(X, Y, Z) predicted classes of frame `token` from `<pred_dir>/<token>.npz`.

    Raises FileNotFoundError naming the path and token when the file is missing, KeyError
    when it lacks `semantics`.
    """
    path = prediction_path(pred_dir, token)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'missing prediction {path} for frame token {token}')
    with np.load(path) as data:
        if 'semantics' not in data:
            raise KeyError(f'prediction {path} for frame token {token} has no `semantics` '
                           f'array (found {sorted(data.keys())})')
        return data['semantics']
