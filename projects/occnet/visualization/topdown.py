"""Bird's-eye renders of dense occupancy grids: a class map per grid and a ground truth |
prediction | error picture.

Image orientation everywhere: the grid's +x (forward) points up the image and +y (left) points
left, i.e. the voxel column (x, y) of an (X, Y, Z) grid lands at row X-1-x, column Y-1-y.

Every render takes `dataset` (a name, an OccDescription or a `metainfo()` dict; see
occnet.descriptions) for its classes, palette, free / ignore labels and voxel size.
"""
import os

import cv2
import numpy as np

from occnet.descriptions import get_description

FREE_RGB = (239, 239, 239)  # empty columns and voxels: near-white, whatever the palette
CANVAS_RGB = (255, 255, 255)
TEXT_RGB = (40, 40, 40)
BORDER_RGB = (170, 170, 170)
# Error map colours, one per kind of disagreement between top classes of a column.
ERROR_KINDS = (
    ('correct occupied', (215, 215, 215)),
    ('wrong class', (215, 35, 35)),
    ('missed occupied', (255, 150, 0)),
    ('false occupied', (40, 100, 230)),
)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def column_top_classes(dense, dataset='openscene'):
    """Class and height index of the highest occupied voxel of every (x, y) column.

    Args:
        dense: (X, Y, Z) integer labels; the dataset's free_index and ignore_index count as
            empty.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        top_class (X, Y) uint8 (free_index where the column is empty) and
        top_z (X, Y) int64 (-1 where the column is empty).
    """
    desc = get_description(dataset)
    dense = np.asarray(dense)
    if dense.ndim != 3:
        raise ValueError(f'expected a dense (X, Y, Z) label grid, got shape {dense.shape}')
    occupied = (dense != desc.free_index) & (dense != desc.ignore_index)
    num_z = dense.shape[2]
    highest_from_top = occupied[:, :, ::-1].argmax(axis=2)
    has_voxel = occupied.any(axis=2)
    top_z = np.where(has_voxel, num_z - 1 - highest_from_top, -1)
    top_class = np.take_along_axis(dense, np.maximum(top_z, 0)[..., None], axis=2)[..., 0]
    top_class = np.where(has_voxel, top_class, desc.free_index).astype(np.uint8)
    return top_class, top_z


def shade_by_height(rgb, top_z, num_z):
    """Darken low columns and lighten high ones so height reads in a flat map.

    Args:
        rgb: (..., 3) float colours 0..255; top_z: (...) height indices 0..num_z-1.
    Returns:
        (..., 3) float colours: x0.7 at the floor, the plain colour at mid height, up to 35%
        of the way to white at the top.
    """
    t = (np.asarray(top_z, dtype=np.float64) / max(num_z - 1, 1))[..., None]
    darker = rgb * (0.7 + 0.6 * t)
    lighter = rgb + (255.0 - rgb) * (t - 0.5) * 0.7
    return np.where(t < 0.5, darker, lighter)


def _to_image_orientation(grid_xy):
    """(X, Y, ...) array indexed by voxel column -> image rows/cols (row = X-1-x, col = Y-1-y)."""
    return grid_xy[::-1, ::-1]


def _upscale(image, scale):
    if scale == 1:
        return np.ascontiguousarray(image)
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def topdown_class_map(dense, scale=1, shade=True, dataset='openscene'):
    """Top-down RGB image of a dense label grid: each (x, y) column shows the class colour
    (the dataset's palette) of its highest occupied voxel, brightened with height, near-white
    (FREE_RGB) where the column is free.

    Args:
        dense: (X, Y, Z) integer labels 0..free_index, or ignore_index (drawn as free)
            (OpenScene: 0..10, free 11, ignore 255).
        scale: pixels per voxel (nearest-neighbour upscaling).
        shade: brighten with height; False gives the plain palette colours.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        (X * scale, Y * scale, 3) uint8 RGB; +x up, +y left.
    """
    desc = get_description(dataset)
    dense = np.asarray(dense)
    bad = np.setdiff1d(np.unique(dense), np.r_[np.arange(len(desc.palette)), desc.ignore_index])
    if bad.size:
        raise ValueError(f'label grid holds class {int(bad[0])}; expected 0..'
                         f'{len(desc.palette) - 1} or {desc.ignore_index} ({desc.name} labels)')
    top_class, top_z = column_top_classes(dense, desc)
    rgb = np.asarray(desc.palette, dtype=np.float64)[top_class]
    if shade:
        rgb = shade_by_height(rgb, np.maximum(top_z, 0), dense.shape[2])
    rgb[top_class == desc.free_index] = FREE_RGB
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return _upscale(_to_image_orientation(image), scale)


def error_kinds(gt, pred, dataset='openscene'):
    """Index into ERROR_KINDS of every cell: 0 both occupied with the same class, 1 both
    occupied with different classes, 2 occupied in gt only (missed), 3 in pred only (false);
    the dataset's free_index where both are empty. free_index and ignore_index count as empty.

    Args:
        gt, pred: integer class arrays of one shape (voxels, or the top classes of columns).
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        uint8 array of that shape.
    """
    desc = get_description(dataset)
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f'ground truth shape {gt.shape} and prediction shape {pred.shape} '
                         'differ')
    gt_occ = (gt != desc.free_index) & (gt != desc.ignore_index)
    pred_occ = (pred != desc.free_index) & (pred != desc.ignore_index)
    kinds = np.full(gt.shape, desc.free_index, dtype=np.uint8)
    both = gt_occ & pred_occ
    kinds[both] = np.where(gt[both] == pred[both], 0, 1)
    kinds[gt_occ & ~pred_occ] = 2
    kinds[~gt_occ & pred_occ] = 3
    return kinds


def topdown_error_map(gt, pred, scale=1, dataset='openscene'):
    """Top-down map of where the top class of each column disagrees.

    Colours (ERROR_KINDS): grey = same occupied class, red = both occupied but different
    classes, orange = occupied in gt but free in pred, blue = free in gt but occupied in pred;
    near-white where both are free.

    Args:
        gt, pred: (X, Y, Z) integer label grids of one shape.
        scale: pixels per voxel.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        (X * scale, Y * scale, 3) uint8 RGB and a dict {kind: number of columns}.
    """
    desc = get_description(dataset)
    kinds = error_kinds(column_top_classes(gt, desc)[0], column_top_classes(pred, desc)[0],
                        desc)
    image = np.empty((*kinds.shape, 3), dtype=np.uint8)
    image[:] = FREE_RGB
    counts = {}
    for index, (name, colour) in enumerate(ERROR_KINDS):
        where = kinds == index
        image[where] = colour
        counts[name] = int(where.sum())
    return _upscale(_to_image_orientation(image), scale), counts


def object_agreement(gt, pred, dataset='openscene'):
    """Percentage of the cells where gt or pred holds an object (a class of the dataset's
    `foreground`, so not ground, free or ignore) that hold the same class in both; 100 when
    there are none. Leaving the ground out keeps the figure from reading 95% on a flat road.

    Args:
        gt, pred: integer class arrays of one shape (voxels, or the top classes of columns).
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    """
    foreground = get_description(dataset).foreground
    gt, pred = np.asarray(gt), np.asarray(pred)
    objects = np.isin(gt, foreground) | np.isin(pred, foreground)
    count = int(objects.sum())
    return 100.0 * int((gt[objects] == pred[objects]).sum()) / count if count else 100.0


def _draw_ego(panel, scale):
    """Ego marker at the grid centre: a dark triangle pointing forward (up)."""
    cy, cx = panel.shape[0] / 2.0, panel.shape[1] / 2.0
    half_len, half_width = 2.2 * scale + 3, 1.3 * scale + 2  # about 2 m long
    tri = np.array([[cx, cy - half_len], [cx - half_width, cy + half_len],
                    [cx + half_width, cy + half_len]])
    pts = np.rint(tri * 16).astype(np.int32)  # 4 fractional bits for a smooth edge
    cv2.fillPoly(panel, [pts], (20, 20, 20), lineType=cv2.LINE_AA, shift=4)
    cv2.polylines(panel, [pts], True, (255, 255, 255), 1, lineType=cv2.LINE_AA, shift=4)


def _draw_scale_bar(panel, scale, voxel_size, metres=10):
    """A `metres` scale bar in the panel's bottom-left corner (voxel_size: metres per voxel,
    scale: pixels per voxel)."""
    length = int(round(metres / voxel_size * scale))
    x0, y0 = 10, panel.shape[0] - 12
    cv2.rectangle(panel, (x0 - 4, y0 - 20), (x0 + length + 4, y0 + 5), (255, 255, 255), -1)
    cv2.line(panel, (x0, y0), (x0 + length, y0), TEXT_RGB, 2)
    for x in (x0, x0 + length):
        cv2.line(panel, (x, y0 - 4), (x, y0 + 3), TEXT_RGB, 2)
    cv2.putText(panel, f'{metres} m', (x0 + length // 2 - 14, y0 - 7), FONT, 0.42, TEXT_RGB, 1,
                cv2.LINE_AA)


def _put_text(canvas, text, origin, size=0.55, colour=TEXT_RGB, thickness=1, max_width=None):
    """Anti-aliased text at `origin` (left, baseline); shrunk to fit `max_width` pixels."""
    if max_width is not None:
        width = cv2.getTextSize(text, FONT, size, thickness)[0][0]
        size *= min(1.0, max_width / max(width, 1))
    cv2.putText(canvas, text, origin, FONT, size, colour, thickness, cv2.LINE_AA)


def _legend_entries(gt, pred, desc):
    """(name, RGB) of the classes at the top of a column of gt or pred; desc: OccDescription."""
    present = np.union1d(column_top_classes(gt, desc)[0], column_top_classes(pred, desc)[0])
    return [(desc.class_names[c], desc.palette[c]) for c in present if c != desc.free_index]


def _draw_legend_row(canvas, entries, x0, y0, max_x, swatch=14):
    """Swatch + name entries left to right, wrapping at max_x; returns the y below them."""
    x, y = x0, y0
    for name, colour in entries:
        width = swatch + 6 + cv2.getTextSize(name, FONT, 0.5, 1)[0][0] + 20
        if x + width > max_x and x > x0:
            x, y = x0, y + swatch + 12
        cv2.rectangle(canvas, (x, y), (x + swatch, y + swatch), colour, -1)
        cv2.rectangle(canvas, (x, y), (x + swatch, y + swatch), BORDER_RGB, 1)
        _put_text(canvas, name, (x + swatch + 6, y + swatch - 2), 0.5)
        x += width
    return y + swatch + 12


def render_gt_vs_pred(gt, pred, title=None, scale=3, dataset='openscene'):
    """Image of ground truth | prediction | error map side by side, with panel titles, an
    ego marker, a scale bar and a legend of the classes present.

    Args:
        gt, pred: (X, Y, Z) integer label grids of the same shape (the dataset's free and
            ignore labels; OpenScene: 11 free, 255 ignore).
        title: optional line drawn above the panels (e.g. the frame token).
        scale: pixels per voxel.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    Returns:
        (H, W, 3) uint8 RGB.
    """
    desc = get_description(dataset)
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f'ground truth shape {gt.shape} and prediction shape {pred.shape} '
                         'differ')
    error, _ = topdown_error_map(gt, pred, scale, desc)
    right = object_agreement(column_top_classes(gt, desc)[0], column_top_classes(pred, desc)[0],
                             desc)
    panels = [(topdown_class_map(gt, scale, dataset=desc), 'ground truth'),
              (topdown_class_map(pred, scale, dataset=desc), 'prediction'),
              (error, f'errors: {right:.1f}% of object columns right')]
    for panel, _ in panels:
        _draw_ego(panel, scale)
        _draw_scale_bar(panel, scale, desc.voxel_size)
    return compose_panels(panels, title, 'x forward = up, y left = left',
                          [_legend_entries(gt, pred, desc), ERROR_KINDS])


def compose_panels(panels, title=None, footer=None, legends=()):
    """Equal-sized panels side by side on a white canvas, each with its name above it, an
    optional title line, a grey footer line and legend rows below.

    Args:
        panels: [(image (h, w, 3) uint8 RGB, name)], all the same size.
        legends: up to two lists of (name, RGB) entries: one list spans the canvas; of two,
            the first spans the panels before the last one, the second the last panel.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    margin, gap = 20, 16
    panel_h, panel_w = panels[0][0].shape[:2]
    count = len(panels)
    width = 2 * margin + count * panel_w + (count - 1) * gap
    top = margin + (40 if title else 0) + 26
    canvas = np.full((top + panel_h + (30 if footer else 10), width, 3), CANVAS_RGB,
                     dtype=np.uint8)
    if title:
        _put_text(canvas, title, (margin, margin + 22), 0.75, thickness=2,
                  max_width=width - 2 * margin)
    for i, (panel, name) in enumerate(panels):
        x = margin + i * (panel_w + gap)
        canvas[top:top + panel_h, x:x + panel_w] = panel
        cv2.rectangle(canvas, (x - 1, top - 1), (x + panel_w, top + panel_h), BORDER_RGB, 1)
        _put_text(canvas, name, (x, top - 9), 0.6, max_width=panel_w)
    if footer:
        _put_text(canvas, footer, (margin, top + panel_h + 18), 0.42, (110, 110, 110))
    if not legends:
        return canvas
    if len(legends) > 2:
        raise ValueError(f'compose_panels draws at most 2 legend lists, got {len(legends)}')
    legend = np.full((400, width, 3), CANVAS_RGB, dtype=np.uint8)
    last_x = margin + (count - 1) * (panel_w + gap) if len(legends) == 2 else margin
    bottom = _draw_legend_row(legend, legends[-1], last_x, 4, width - margin)
    if len(legends) == 2:
        bottom = max(bottom, _draw_legend_row(legend, legends[0], margin, 4, last_x - gap))
    return np.concatenate([canvas, legend[:bottom + margin]], axis=0)


def write_rgb(path, image):
    """Write an (H, W, 3) uint8 RGB image (PNG or JPEG by the extension) at `path`, creating
    its folder; returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f'could not write image {path} (does the name end in .png or .jpg?)')
    return path


def save_gt_vs_pred(gt, pred, path, title=None, scale=3, dataset='openscene'):
    """Write `render_gt_vs_pred` as a PNG at `path` (folders created); returns the RGB image."""
    image = render_gt_vs_pred(gt, pred, title=title, scale=scale, dataset=dataset)
    write_rgb(path, image)
    return image
