"""Multi-view pipeline transforms (registered in occnet's TRANSFORMS)."""
from occnet.datasets.transforms.ablation import ShuffleCameraExtrinsics
from occnet.datasets.transforms.bev_flip import RandomFlipBEV
from occnet.datasets.transforms.depth import DepthMapsFromPoints
from occnet.datasets.transforms.formatting import PackOccInputs
from occnet.datasets.transforms.image import (PadMultiViewImages, RandomScaleMultiViewImages,
                                              ResizeMultiViewImages)
from occnet.datasets.transforms.loading import (LoadMultiViewImages, LoadOccupancyLabel,
                                                LoadPoints)
from occnet.datasets.transforms.occ3d_label import LoadOcc3DLabel
from occnet.datasets.transforms.photometric import (GridMaskMultiViewImages,
                                                    PhotoMetricDistortionMultiViewImages)

__all__ = ['DepthMapsFromPoints', 'GridMaskMultiViewImages', 'LoadMultiViewImages',
           'LoadOcc3DLabel', 'LoadOccupancyLabel', 'LoadPoints', 'PackOccInputs',
           'PadMultiViewImages',
           'PhotoMetricDistortionMultiViewImages', 'RandomFlipBEV', 'RandomScaleMultiViewImages',
           'ResizeMultiViewImages', 'ShuffleCameraExtrinsics']
