"""Occ3D-nuScenes evaluation of predictions on disk: the Occ3D mIoU and SparseOcc's RayIoU.

- Occ3D mIoU: camera-visible voxels only (`mask_camera`), one 18 x 18 confusion matrix
  summed over the frames, IoU per class, mean over the classes 0-16 with any voxel in the
  labels or the predictions (numpy's nanmean over 0 / 0 leaves the same ones out).
- RayIoU (SparseOcc): no mask; rays from evaluation.sparseocc_rays' origins and directions,
  cast through the labels and the predictions by evaluation.ray_iou with the depth where
  the ray leaves the hit voxel; rays whose label hits nothing are dropped; mean over the 17
  classes seen and the 1, 2 and 4 m thresholds.
docs/evaluation.md says which published numbers use which.
"""
import os

import numpy as np

from occnet.datasets.infos import DataError, resolve
from occnet.datasets.occ3d import load_occ3d_label
from occnet.descriptions import OCC3D_NUSCENES
from occnet.evaluation.occupancy_metrics import (RANGES, confusion_matrix, frame_confusions,
                                                 near_voxels, summarize_confusion,
                                                 summarize_split)
from occnet.evaluation.ray_iou import frame_ray_confusion, ray_iou_summary
from occnet.evaluation.report import load_prediction
from occnet.geometry import scene_origins

def evaluate_occ3d(frames, data_root, pred_dir, ray_iou=False, skip_missing=False,
                   progress=None):
    """Summary dict of the predictions `<pred_dir>/<token>.npz` (`semantics` uint8 (200,
    200, 16), 0..17) against the Occ3D labels of `frames` (occnet frames, occ3d.py).

    Returns the summarize_split keys of the camera-visible voxels (`miou`, `per_class`,
    `fg_miou`, `iou`, near / far, ...), `miou_all_voxels` (no mask, for reference, not a
    published protocol), `num_frames_skipped`, `protocol`, and with ray_iou `ray_iou`,
    `ray_iou@1m` / `@2m` / `@4m` and `ray_iou_per_class` (%).
    Raises DataError naming the file on a bad label; FileNotFoundError on a missing label
    or prediction unless skip_missing; ValueError naming the frame on a bad prediction.
    """
    desc = OCC3D_NUSCENES
    cm = np.zeros((len(RANGES), desc.num_classes, desc.num_classes), dtype=np.int64)
    cm_all = np.zeros((desc.num_classes, desc.num_classes), dtype=np.int64)
    near = near_voxels(dataset=desc)
    origins = scene_origins(frames) if ray_iou else None
    ray_counts, num_frames, skipped = 0, 0, []
    for done, frame in enumerate(frames, start=1):
        token = frame['token']
        try:
            gt, _, mask_camera = load_occ3d_label(resolve(data_root, frame['occ_gt_path']), desc)
            pred = load_prediction(pred_dir, token)
        except FileNotFoundError:
            if not skip_missing:
                raise
            skipped.append(token)
            if progress:
                progress(done, len(frames))
            continue
        try:
            cm += frame_confusions(gt, pred, mask=mask_camera, near=near, dataset=desc)
            cm_all += confusion_matrix(gt, pred, dataset=desc)
            if ray_iou:
                # the description's protocol: SparseOcc's fan, depth where the ray exits
                ray_counts = ray_counts + frame_ray_confusion(gt, pred, origins[token],
                                                              dataset=desc)
        except ValueError as err:
            raise ValueError(f'frame token {token}, prediction '
                             f'{os.path.join(pred_dir, token + ".npz")}: {err}') from None
        num_frames += 1
        if progress:
            progress(done, len(frames))
    if num_frames == 0:
        raise DataError('every frame was skipped; nothing to evaluate')
    summary = summarize_split(cm, None, num_frames, dataset=desc)
    summary['protocol_miou'] = summary['miou']  # cm counts the camera-visible voxels only
    summary['miou_all_voxels'] = summarize_confusion(cm_all, dataset=desc)['miou']
    summary['num_frames_skipped'] = len(skipped)
    summary['protocol'] = ('occ3d: mIoU over camera-visible voxels (mask_camera), classes '
                           '0-16; RayIoU as SparseOcc, no mask')
    if ray_iou:
        summary.update(ray_iou_summary(ray_counts, dataset=desc))
    return summary
