"""Occ3D-nuScenes labels into a sample."""
from mmcv.transforms import BaseTransform

from occnet.datasets.infos import DataError
from occnet.datasets.occ3d import load_occ3d_label
from occnet.descriptions import get_description
from occnet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadOcc3DLabel(BaseTransform):
    """`occ_gt_path` (labels.npz) -> `voxel_semantics` (X, Y, Z) uint8 (0..17, 17 free) and
    `mask_camera` (X, Y, Z) bool (True = seen by a camera), indexed [x, y, z] in the ego
    frame (the label's `mask_lidar` is not used: no protocol or loss here reads it). Frames
    whose `with_label` is False (history frames of a queue) pass through.

    Args:
        with_camera_mask: add `mask_camera` (the Occ3D protocol's mask; the loss uses it with
            use_camera_mask=True).
        dataset: the description the labels follow (grid shape, label range).
    """

    def __init__(self, with_camera_mask=True, dataset='occ3d_nuscenes'):
        self.with_camera_mask = with_camera_mask
        self.description = get_description(dataset)

    def transform(self, results):
        if not results.get('with_label', True):
            return results
        path = results.get('occ_gt_path')
        if path is None:
            raise DataError(f"frame {results['token']} names no Occ3D label (occ_gt_path)")
        semantics, _, mask_camera = load_occ3d_label(path, self.description)
        results['voxel_semantics'] = semantics
        if self.with_camera_mask:
            results['mask_camera'] = mask_camera
        return results
