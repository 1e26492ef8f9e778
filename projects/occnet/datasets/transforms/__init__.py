"""Multi-view pipeline transforms (registered in occnet's TRANSFORMS)."""
from occnet.datasets.transforms.ablation import ShuffleCameraExtrinsics
from occnet.datasets.transforms.formatting import PackOccInputs
from occnet.datasets.transforms.image import ResizeMultiViewImages
from occnet.datasets.transforms.loading import LoadMultiViewImages, LoadOccupancyLabel

__all__ = ['LoadMultiViewImages', 'LoadOccupancyLabel', 'PackOccInputs', 'ResizeMultiViewImages',
           'ShuffleCameraExtrinsics']
