"""Ray casting against the synthetic world: yaw boxes (parts.py) and the ground (the road plane
z = 0 plus the terrain of layout.py). Pure numpy; shared by the cameras and the lidar.

Rays form a (rows, cols) grid from one origin (a camera's pixels, a lidar's beams x azimuths);
each box is tested only against the rays of a rectangle of that grid that covers it, so the cost
grows with the boxes' image area, not with boxes x rays.
"""
import numpy as np

from occnet.datasets.synthetic.layout import SIDEWALK_OUTER, green_between, terrain_height
from occnet.datasets.synthetic.parts import expand_groups

# Box faces: 0 +x, 1 -x, 2 +y, 3 -y, 4 +z (top), 5 -z of the box's frame.
FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                        dtype=np.float64)
FACE_UP = 4
MAX_PAIRS = 1 << 21  # (ray, box) pairs tested at once
TERRAIN_SAMPLES = 12  # samples along the part of a ray that may meet the terrain
TERRAIN_REFINES = 6  # regula falsi steps after the first sample under the surface


def to_box_frame(points, boxes):
    """Points (N, 3) expressed in the frames of yaw boxes (N, 7) (centre at the origin)."""
    delta = points - boxes[:, :3]
    cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    return np.stack([cos * delta[:, 0] + sin * delta[:, 1],
                     -sin * delta[:, 0] + cos * delta[:, 1], delta[:, 2]], axis=1)


def rotate_to_box_frame(vectors, box, cos, sin):
    """Directions (M, 3) expressed in the frames of boxes `box` (M,) whose yaws have the
    cosines and sines `cos`, `sin` (per box)."""
    c, s = cos[box], sin[box]
    return np.stack([c * vectors[:, 0] + s * vectors[:, 1], -s * vectors[:, 0] + c * vectors[:, 1],
                     vectors[:, 2]], axis=1)


def ray_box_entry(local_origins, local_directions, half_sizes, near=1e-6):
    """Where rays enter boxes (slab test), pairwise, in each box's own frame.

    Args:
        local_origins, local_directions: (N, 3) ray origins and directions in the frame of
            their box (centre at the origin, axes along its length, width and height); t is in
            the directions' units.
        half_sizes: (N, 3) half length, width and height of the boxes.
        near: entries at t <= near are ignored (a ray starting inside a box does not hit it).
    Returns:
        t: (N,) ray parameter of the entry point, inf where the ray misses.
        face: (N,) int8 face entered (index into FACE_NORMALS, box frame), -1 where missed.
    """
    count = len(local_origins)
    t_near = np.full(count, -np.inf)
    t_far = np.full(count, np.inf)
    face = np.zeros(count, dtype=np.int8)
    with np.errstate(divide='ignore', invalid='ignore'):
        for axis in range(3):
            origin, direction = local_origins[:, axis], local_directions[:, axis]
            inverse = 1.0 / direction
            a = (-half_sizes[:, axis] - origin) * inverse
            b = (half_sizes[:, axis] - origin) * inverse
            entry = np.minimum(a, b)
            later = entry > t_near
            face[later] = 2 * axis + (direction[later] > 0)
            t_near = np.maximum(t_near, entry)
            t_far = np.minimum(t_far, np.maximum(a, b))
    hit = (t_near <= t_far) & (t_near > near)
    return np.where(hit, t_near, np.inf), np.where(hit, face, -1).astype(np.int8)


def first_box_hits(origin, directions, grid_cols, boxes, rects, wrap_cols=False, near=1e-6):
    """First box each ray of a grid enters.

    Args:
        origin: (3,) common origin of the rays.
        directions: (R * C, 3) ray directions, row-major over a (R, C) grid.
        grid_cols: C.
        boxes: (N, 7) yaw boxes.
        rects: (N, 4) int row_lo, row_hi, col_lo, col_hi (ends exclusive): the rays tested
            against each box. With wrap_cols, columns are taken modulo C (a 360-degree sweep).
        near: as in ray_box_entry.
    Returns:
        t: (R * C,) entry parameter of the first hit, inf for none.
        box: (R * C,) int64 index of that box, -1 for none.
        face: (R * C,) int8 face entered, -1 for none.
    """
    num_rays = len(directions)
    best_t = np.full(num_rays, np.inf)
    best_box = np.full(num_rays, -1, dtype=np.int64)
    best_face = np.full(num_rays, -1, dtype=np.int8)
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    heights = np.clip(rects[:, 1] - rects[:, 0], 0, None)
    widths = np.clip(rects[:, 3] - rects[:, 2], 0, None)
    counts = heights * widths
    order = np.flatnonzero(counts > 0)
    box_origin = to_box_frame(np.broadcast_to(origin, (len(boxes), 3)), boxes)
    cos, sin, half = np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), boxes[:, 3:6] / 2
    cumulative = np.cumsum(counts[order])
    bounds = [0]
    while bounds[-1] < len(order):
        done = cumulative[bounds[-1] - 1] if bounds[-1] else 0
        bounds.append(max(int(np.searchsorted(cumulative, done + MAX_PAIRS, side='right')),
                          bounds[-1] + 1))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        chunk = order[lo:hi]
        group, offset = expand_groups(counts[chunk])
        box = chunk[group]
        row = rects[box, 0] + offset // widths[box]
        col = rects[box, 2] + offset % widths[box]
        if wrap_cols:
            col %= grid_cols
        ray = row * grid_cols + col
        local_directions = rotate_to_box_frame(directions[ray], box, cos, sin)
        t, face = ray_box_entry(box_origin[box], local_directions, half[box], near)
        hit = np.flatnonzero(np.isfinite(t))
        if len(hit) == 0:
            continue
        # per ray the nearest entry; at equal t the later box, as in the voxeliser
        ranked = hit[np.lexsort((-box[hit], t[hit], ray[hit]))]
        first = ranked[np.append(True, ray[ranked][1:] != ray[ranked][:-1])]
        ray, t, face, box = ray[first], t[first], face[first], box[first]
        better = (t < best_t[ray]) | ((t == best_t[ray]) & (box > best_box[ray]))
        ray, t, face, box = ray[better], t[better], face[better], box[better]
        best_t[ray], best_box[ray], best_face[ray] = t, box, face
    return best_t, best_box, best_face


def ground_hits(origin, directions, lidar2global, layout, max_t):
    """First hit of rays on the ground: the road plane z = 0 (global) and the terrain.

    Args:
        origin: (3,) ray origin in the lidar frame; directions: (R, 3) in the lidar frame.
        lidar2global: (4, 4) pose of the frame (a rotation about z and a translation).
        layout: RoadLayout (terrain heights).
        max_t: rays reaching no ground before this parameter get inf.
    Returns:
        t: (R,) ray parameter of the hit, inf for none.
    """
    height = origin[2] + lidar2global[2, 3]  # of the origin above the road
    terrain_peak = float(layout.terrain[:, 0].max())  # no terrain rises higher
    dz = directions[:, 2]
    t = np.full(len(directions), np.inf)
    down = np.flatnonzero(dz < 0)
    t_plane = -height / dz[down]
    t[down] = np.where(t_plane < max_t, t_plane, np.inf)
    # Rays that may meet the terrain before the plane: between its peak plane and the road plane
    t_top = np.maximum((terrain_peak - height) / dz[down], 0.0)
    t_end = np.minimum(t_plane, max_t)
    rotation = lidar2global[:2, :2]
    origin_xy = origin[:2] @ rotation.T + lidar2global[:2, 3]
    dir_xy = directions[down, :2] @ rotation.T

    def road_sd(param):
        xy = origin_xy + param[:, None] * dir_xy
        return layout.road_coordinates(xy)

    s_top, d_top = road_sd(t_top)
    s_end, d_end = road_sd(t_end)
    beyond = (t_top < t_end) & ((np.abs(d_top) > SIDEWALK_OUTER) | (np.abs(d_end) > SIDEWALK_OUTER))
    beyond &= green_between(layout, np.minimum(s_top, s_end), np.maximum(s_top, s_end),
                            np.where(np.abs(d_top) > np.abs(d_end), d_top, d_end))
    rays = down[beyond]
    if len(rays) == 0:
        return t
    lo, hi = t_top[beyond], t_end[beyond]
    dxy, dz_c = dir_xy[beyond], dz[rays]

    def above(param):
        """Height of the ray above the terrain at parameters (K, M)."""
        xy = origin_xy + param[..., None] * dxy
        s, d = layout.road_coordinates(xy)
        return height + param * dz_c - terrain_height(layout, s.ravel(), d.ravel()).reshape(
            param.shape)

    samples = lo + (hi - lo) * np.linspace(0.0, 1.0, TERRAIN_SAMPLES + 1)[:, None]
    gap = above(samples)
    under = gap <= 0
    has = under.any(axis=0)
    k = np.argmax(under, axis=0)
    k_prev = np.maximum(k - 1, 0)
    cols = np.arange(len(rays))
    a, b = samples[k_prev, cols], samples[k, cols]  # the ray is above at a, under at b
    fa, fb = gap[k_prev, cols], gap[k, cols]
    last = np.zeros(len(rays), dtype=np.int8)  # which end moved last: 1 a, -1 b
    for _ in range(TERRAIN_REFINES):  # regula falsi, Illinois variant
        with np.errstate(divide='ignore', invalid='ignore'):
            m = np.where(fa - fb > 0, a + (b - a) * fa / (fa - fb), b)
        fm = above(m[None])[0]
        up = fm > 0
        a, fa = np.where(up, m, a), np.where(up, fm, fa)
        b, fb = np.where(up, b, m), np.where(up, fb, fm)
        fb = np.where(up & (last == 1), fb / 2, fb)  # the same end twice: pull the other
        fa = np.where(~up & (last == -1), fa / 2, fa)
        last = np.where(up, 1, -1).astype(np.int8)
    # b is the nearest parameter known to lie on or under the surface
    t[rays] = np.where(has, b, t[rays])
    return t
