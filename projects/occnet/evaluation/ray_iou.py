"""RayIoU (the ray-based occupancy metric popularised by SparseOcc, Liu et al. 2024) on CPU.

Rays leave lidar origins (the current frame's and those of nearby frames of the same scene,
expressed in the current frame) in a fixed fan of directions. Each ray is marched through
the ground-truth grid and through the predicted grid to its first occupied voxel, giving a
class and the depth at which the ray enters that voxel. A ray whose ground truth hits
nothing is not evaluated. For a distance threshold t, a ray counts as a true positive of
class c when both hits are class c and their depths differ by less than t; otherwise it is a
false negative of its ground-truth class and, when the prediction hit something, a false
positive of the predicted class. RayIoU_c(t) = TP / (TP + FP + FN), summed over all rays of
all frames; mRayIoU averages over classes with any ground truth or prediction and over the
thresholds (1, 2 and 4 m by default).

Everything is numpy and vectorised over rays (a DDA voxel traversal, Amanatides and Woo
1987), so no compiled extension is needed.
"""
import numpy as np

from occnet.descriptions import get_description
from occnet.evaluation.sparseocc_rays import sparseocc_ray_directions
from occnet.geometry import origins_in_frame

THRESHOLDS_M = (1.0, 2.0, 4.0)
RAY_THRESHOLD_KEYS = tuple(f'ray_iou@{t:g}m' for t in THRESHOLDS_M)
AZIMUTH_STEP_DEG = 1.0
ELEVATIONS_DEG = tuple(np.arange(-25.0, 10.1, 2.5))  # 15 rings, roughly a 32-beam lidar


def ray_directions(azimuth_step_deg=AZIMUTH_STEP_DEG, elevations_deg=ELEVATIONS_DEG):
    """(R, 3) unit vectors: every azimuth step around z, at each elevation (degrees above the
    x-y plane)."""
    azimuth = np.radians(np.arange(0.0, 360.0, azimuth_step_deg))
    elevation = np.radians(np.asarray(elevations_deg, dtype=np.float64))
    az, el = np.meshgrid(azimuth, elevation, indexing='ij')
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)],
                    axis=-1).reshape(-1, 3)


def cast_rays(grid, origins, directions, free_index=None, pc_range=None, voxel_size=None,
              dataset='openscene', depth_at='entry'):
    """First occupied voxel along each ray from each origin.

    Args:
        grid: (X, Y, Z) integer classes, `free_index` = empty.
        origins: (O, 3) metres in the grid's frame, inside the grid.
        directions: (R, 3) unit vectors.
        free_index, pc_range (metres), voxel_size (metres): None: the dataset's.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
        depth_at: 'entry' or 'exit', as in march_rays.
    Returns:
        hit_class: (O * R,) int64, -1 where the ray leaves the grid without a hit.
        hit_depth: (O * R,) float64 metres from the origin to where the ray enters (or
            leaves) the hit voxel, inf without a hit.
    """
    origins = np.asarray(origins, dtype=np.float64)
    directions = np.asarray(directions, dtype=np.float64)
    starts = np.repeat(origins, len(directions), axis=0)  # (O * R, 3), origin-major
    dirs = np.tile(directions, (len(origins), 1))
    hit_class, hit_depth, _ = march_rays(grid, starts, dirs, free_index, pc_range, voxel_size,
                                         dataset, depth_at)
    return hit_class, hit_depth


def march_rays(grid, starts, dirs, free_index=None, pc_range=None, voxel_size=None,
               dataset='openscene', depth_at='entry'):
    """First occupied voxel along each of N rays (a vectorised DDA voxel traversal).

    Args:
        grid: (X, Y, Z) integer classes; `free_index` (a value or a sequence of values) is
            empty.
        starts: (N, 3) metres in the grid's frame; rays starting outside the grid miss.
        dirs: (N, 3) unit vectors.
        free_index, pc_range (metres), voxel_size (metres): None: the dataset's.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
        depth_at: 'entry': the hit depth is where the ray enters the hit voxel (0 when the
            start's own voxel is occupied); 'exit': where it leaves it (SparseOcc's RayIoU).
    Returns:
        hit_class: (N,) int64, -1 where the ray leaves the grid without a hit.
        hit_depth: (N,) float64 metres from the start to where the ray enters (or leaves)
            the hit voxel, inf without a hit.
        hit_axis: (N,) int64, the axis (0 x, 1 y, 2 z) of the voxel face the ray crossed into
            the hit voxel; -1 without a hit or when the start's own voxel is occupied.
    """
    if depth_at not in ('entry', 'exit'):
        raise ValueError(f"depth_at is 'entry' or 'exit', not {depth_at!r}")
    desc = get_description(dataset)
    free_index = desc.free_index if free_index is None else free_index
    pc_range = desc.point_cloud_range if pc_range is None else pc_range
    voxel_size = desc.voxel_size if voxel_size is None else voxel_size
    grid = np.asarray(grid)
    shape = np.array(grid.shape)
    lower = np.asarray(pc_range[:3], dtype=np.float64)
    dirs = np.asarray(dirs, dtype=np.float64)
    num = len(dirs)
    pos = (np.asarray(starts, dtype=np.float64) - lower) / voxel_size  # in voxel units
    cell = np.floor(pos).astype(np.int64)
    step = np.where(dirs >= 0, 1, -1)
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = np.where(dirs != 0, 1.0 / np.abs(dirs), np.inf)
        next_boundary = np.where(step > 0, cell + 1 - pos, pos - cell)
        t_max = np.where(dirs != 0, next_boundary * inv, np.inf) * voxel_size
    t_delta = inv * voxel_size
    empty = np.isin(np.arange(max(int(grid.max(initial=0)), np.max(free_index)) + 1),
                    free_index)  # lookup: value -> empty
    hit_class = np.full(num, -1, dtype=np.int64)
    hit_depth = np.full(num, np.inf)
    hit_axis = np.full(num, -1, dtype=np.int64)
    depth = np.zeros(num)
    last_axis = np.full(num, -1, dtype=np.int64)
    active = np.all((cell >= 0) & (cell < shape), axis=1)
    idx = np.flatnonzero(active)
    while idx.size:
        c = cell[idx]
        labels = grid[c[:, 0], c[:, 1], c[:, 2]]
        occupied = ~empty[labels]
        hits = idx[occupied]
        hit_class[hits] = labels[occupied]
        # t_max holds where the ray crosses each axis's next boundary: leaves the voxel
        hit_depth[hits] = depth[hits] if depth_at == 'entry' else t_max[hits].min(axis=1)
        hit_axis[hits] = last_axis[hits]
        idx = idx[~occupied]
        if not idx.size:
            break
        tm = t_max[idx]
        axis = np.argmin(tm, axis=1)
        rows = np.arange(len(idx))
        depth[idx] = tm[rows, axis]
        last_axis[idx] = axis
        cell[idx, axis] += step[idx, axis]
        t_max[idx, axis] += t_delta[idx, axis]
        c = cell[idx]
        inside = np.all((c >= 0) & (c < shape), axis=1)
        idx = idx[inside]
    return hit_class, hit_depth, hit_axis


def ray_confusion(gt_class, gt_depth, pred_class, pred_depth, num_classes,
                  thresholds=THRESHOLDS_M):
    """(len(thresholds), 3, num_classes) int64 counts of TP, FP and FN per class, over the
    rays whose ground truth hits something (see the module docstring)."""
    keep = gt_class >= 0
    gt_class, gt_depth = gt_class[keep], gt_depth[keep]
    pred_class, pred_depth = pred_class[keep], pred_depth[keep]
    counts = np.zeros((len(thresholds), 3, num_classes), dtype=np.int64)
    for i, threshold in enumerate(thresholds):
        match = (pred_class == gt_class) & (np.abs(pred_depth - gt_depth) < threshold)
        counts[i, 0] = np.bincount(gt_class[match], minlength=num_classes)
        counts[i, 2] = np.bincount(gt_class[~match], minlength=num_classes)
        wrong = ~match & (pred_class >= 0)
        counts[i, 1] = np.bincount(pred_class[wrong], minlength=num_classes)
    return counts


def protocol_rays(dataset='openscene'):
    """(directions (R, 3), depth_at) of the dataset's RayIoU protocol (its `ray_protocol`):
    occnet's fan with the entry depth, or SparseOcc's with the exit depth (Occ3D)."""
    if get_description(dataset).ray_protocol == 'sparseocc':
        return sparseocc_ray_directions(), 'exit'
    return ray_directions(), 'entry'


def frame_ray_confusion(gt, pred, origins, directions=None, thresholds=THRESHOLDS_M,
                        num_classes=None, dataset='openscene', depth_at=None):
    """ray_confusion of one frame: gt and pred (X, Y, Z) class grids of the dataset's grid,
    origins (O, 3) metres in the grid's frame (OpenScene: the frame's lidar; Occ3D: the
    ego frame). Classes 0..num_classes-1 are counted; num_classes None: the dataset's
    free_index (free is not a class), so the counts are (T, 3, free_index). directions
    (R, 3) and depth_at (as in march_rays): None takes the dataset's protocol
    (protocol_rays: SparseOcc's fan and exit depth on Occ3D)."""
    desc = get_description(dataset)
    num_classes = desc.free_index if num_classes is None else num_classes
    default_directions, default_depth_at = protocol_rays(desc)
    directions = default_directions if directions is None else directions
    depth_at = default_depth_at if depth_at is None else depth_at
    gt_hits = cast_rays(gt, origins, directions, dataset=desc, depth_at=depth_at)
    pred_hits = cast_rays(pred, origins, directions, dataset=desc, depth_at=depth_at)
    return ray_confusion(*gt_hits, *pred_hits, num_classes, thresholds)


def summarize_ray_iou(counts, thresholds=THRESHOLDS_M, class_names=None):
    """RayIoU (%) from summed counts (T, 3, K): {'ray_iou': mean over thresholds and classes
    seen in ground truth or prediction, 'ray_iou@<t>m': per threshold, 'per_class': {name:
    mean over thresholds}}."""
    tp, fp, fn = counts[:, 0].astype(np.float64), counts[:, 1], counts[:, 2]
    union = tp + fp + fn
    seen = union.sum(0) > 0  # (K,)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, 100.0 * tp / union, 0.0)  # (T, K)
    names = class_names or [str(k) for k in range(counts.shape[-1])]
    out = {'ray_iou': float(iou[:, seen].mean()) if seen.any() else float('nan')}
    for i, threshold in enumerate(thresholds):
        out[f'ray_iou@{threshold:g}m'] = float(iou[i, seen].mean()) if seen.any() else float('nan')
    out['per_class'] = {names[k]: float(iou[:, k].mean()) for k in np.flatnonzero(seen)}
    return out


def ray_iou_summary(counts, dataset='openscene'):
    """The summary entries of RayIoU counts (T, 3, K) summed over a split: `ray_iou`, one
    `ray_iou@<t>m` per threshold and `ray_iou_per_class` {class name: %}, the names being
    the dataset's class_names."""
    rays = summarize_ray_iou(counts, class_names=get_description(dataset).class_names)
    out = {key: value for key, value in rays.items() if key.startswith('ray_iou')}
    out['ray_iou_per_class'] = rays['per_class']
    return out


def scene_ray_origins(infos, max_offset=2, max_gap_s=1.25, dataset='openscene'):
    """{token: (O, 3) ray origins in that frame's lidar frame}: its own lidar origin and those
    of up to `max_offset` frames before and after it in its scene, inside the dataset's grid
    (x-y range of its point_cloud_range). Frames
    are linked as the dataset links them (temporal.link_previous: same scene, by timestamp,
    at most `max_gap_s` apart), so tools/eval_occ.py and the dataset's `ray_origins` agree.
    A frame without poses (no `lidar2global`, no translation / rotation keys) casts from its
    own origin only and lends none to its neighbours."""
    from occnet.datasets.collect import pose_matrices
    from occnet.datasets.temporal import link_previous, next_indices, scene_neighbours
    prev, _ = link_previous([str(info.get('scene_token')) for info in infos],
                            [info.get('timestamp') or 0 for info in infos], max_gap_s)
    nxt = next_indices(prev)
    poses = []
    for info in infos:
        try:
            poses.append(pose_matrices(info)[2])
        except (KeyError, TypeError, ValueError):
            poses.append(None)
    origins = {}
    for i, info in enumerate(infos):
        if poses[i] is None:
            origins[info['token']] = np.zeros((1, 3))
            continue
        near = [poses[j] for j in scene_neighbours(prev, nxt, i, max_offset)
                if poses[j] is not None]
        origins[info['token']] = origins_in_frame(poses[i], near, dataset=dataset)
    return origins
