"""Smear along camera rays: how many predicted object voxels are false and sit in front of
or behind a true object on a ray of a camera that sees them (docs/evaluation.md, "Smear").

A model that cannot tell depth puts an object everywhere along the rays that see it; its
false object voxels then line up with true objects as seen from the cameras. A false voxel
beside an object (off its rays) or in empty street does not count as smear.
"""
import numpy as np

from occnet.descriptions import get_description
from occnet.geometry import points_to_voxel_indices, project_points, voxel_centers

SMEAR_KEYS = ('object_voxels', 'false_object_voxels', 'smear_voxels')


def camera_centres(lidar2img):
    """(N, 3) metres: each camera's centre in the lidar frame, the point every pixel's ray
    starts from (-M^-1 t of each projection's [M | t] rows)."""
    lidar2img = np.asarray(lidar2img, dtype=np.float64)
    return -np.linalg.solve(lidar2img[:, :3, :3], lidar2img[:, :3, 3:])[..., 0]


def smear_counts(gt, pred, lidar2img, image_hw, step=0.25, max_range=80.0, chunk=4096,
                 grid_shape=None, pc_range=None, voxel_size=None, dataset='openscene'):
    """Counts of one frame: (3,) int64 [object_voxels, false_object_voxels, smear_voxels].

    object voxels: predicted with an object class (one of the dataset's `foreground`), where
        the label is not the dataset's ignore_index; false: of those, the ones whose label is
        not an object;
    smear: of the false ones, those with a true object (a foreground label) in another
        voxel on the ray from a camera that sees the voxel's centre through that centre, in
        front of it or behind it. The ray is sampled every `step` metres from the camera up
        to `max_range`.

    Args:
        gt, pred: (X, Y, Z) labels and predicted classes.
        lidar2img: (N, 4, 4) projections from the grid's frame (metres) to pixels of images
            of image_hw.
        image_hw: (H, W) pixels of those images.
        grid_shape, pc_range, voxel_size: the grid's (X, Y, Z) voxels, range (metres) and
            voxel edge (metres); None: the dataset's.
        dataset: name, OccDescription or metainfo dict (occnet.descriptions).
    """
    desc = get_description(dataset)
    grid_shape = desc.grid_shape if grid_shape is None else grid_shape
    pc_range = desc.point_cloud_range if pc_range is None else pc_range
    voxel_size = desc.voxel_size if voxel_size is None else voxel_size
    gt, pred = np.asarray(gt), np.asarray(pred)
    gt_object = np.isin(gt, desc.foreground)
    predicted = np.isin(pred, desc.foreground) & (gt != desc.ignore_index)
    false = predicted & ~gt_object
    counts = np.array([predicted.sum(), false.sum(), 0], dtype=np.int64)
    if not counts[1] or not gt_object.any():
        return counts
    false_index = np.argwhere(false)  # (K, 3)
    centres = voxel_centers(grid_shape, pc_range, voxel_size)[false]  # (K, 3)
    smear = np.zeros(len(centres), dtype=bool)
    t = np.arange(step / 2, max_range, step)
    height, width = image_hw
    for matrix, origin in zip(np.asarray(lidar2img), camera_centres(lidar2img)):
        uv, depth = project_points(centres, matrix)
        sees = (depth > 1e-5) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) \
            & (uv[:, 1] < height) & ~smear
        for start in range(0, int(sees.sum()), chunk):
            which = np.flatnonzero(sees)[start:start + chunk]
            direction = centres[which] - origin
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            samples = origin + t[None, :, None] * direction[:, None, :]  # (k, S, 3)
            index, inside = points_to_voxel_indices(samples.reshape(-1, 3), grid_shape,
                                                    pc_range, voxel_size)
            index, inside = index.reshape(len(which), -1, 3), inside.reshape(len(which), -1)
            other = inside & np.any(index != false_index[which][:, None, :], axis=-1)
            clipped = np.clip(index, 0, np.asarray(grid_shape) - 1)
            hits = gt_object[clipped[..., 0], clipped[..., 1], clipped[..., 2]] & other
            smear[which] = hits.any(axis=1)
    counts[2] = smear.sum()
    return counts


def smear_summary(counts):
    """{'smear_share', 'false_object_share'} in % of the predicted object voxels (None when
    there are none) and the summed counts, from counts summed over frames."""
    objects, false, smear = (int(c) for c in counts)
    share = (lambda n: 100.0 * n / objects) if objects else (lambda n: None)
    return dict(smear_share=share(smear), false_object_share=share(false),
                **dict(zip(SMEAR_KEYS, (objects, false, smear))))
