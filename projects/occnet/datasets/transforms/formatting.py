"""Packing a frame's results into model inputs and a data-sample dict."""
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from occnet.registry import TRANSFORMS

META_KEYS = ('token', 'scene_token', 'log_name', 'frame_idx', 'timestamp', 'img_shape',
             'ori_shape', 'pad_shape', 'img_scale_factor', 'bev_flip')


@TRANSFORMS.register_module()
class PackOccInputs(BaseTransform):
    """Returns {'inputs': {'imgs': uint8 (N, 3, H, W)}, 'data_samples': dict} where the dict
    holds META_KEYS, `lidar2img` (N, 4, 4) float32 and, when loaded, `voxel_semantics`
    (X, Y, Z) uint8 tensor, `mask_camera` (X, Y, Z) bool tensor, `voxel_flow`
    (X, Y, Z, 2) float32 tensor (m/s), `depth_maps` (N, H_d, W_d) float32 tensor (metres,
    0 = no LiDAR return; DepthMapsFromPoints) and `semantic_maps` (N, H_d, W_d) uint8
    tensor (DepthMapsFromPoints(with_semantics=True))."""

    def transform(self, results):
        imgs = torch.from_numpy(np.ascontiguousarray(
            np.stack(results['imgs']).transpose(0, 3, 1, 2)))
        sample = {key: results[key] for key in META_KEYS if key in results}
        sample['lidar2img'] = np.asarray(results['lidar2img'], dtype=np.float32)
        for key in ('voxel_semantics', 'mask_camera', 'voxel_flow', 'depth_maps',
                    'semantic_maps'):
            if key in results:
                sample[key] = torch.from_numpy(results[key])
        return dict(inputs=dict(imgs=imgs), data_samples=sample)
