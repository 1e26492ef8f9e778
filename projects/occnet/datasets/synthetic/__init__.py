"""Synthetic OpenScene-format data: street scenes rendered from the same voxels they label."""
from occnet.datasets.synthetic.writer import generate_dataset

__all__ = ['generate_dataset']
