"""View transforms that lift camera features with explicit depth (LSS / BEVDepth style)."""
from occnet.models.view_transforms.camera_params import camera_parameters, split_projection
from occnet.models.view_transforms.depth_net import CameraAwareDepthNet
from occnet.models.view_transforms.lss import LSSViewTransformer

__all__ = ['CameraAwareDepthNet', 'LSSViewTransformer', 'camera_parameters',
           'split_projection']
