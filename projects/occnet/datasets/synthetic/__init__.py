"""Synthetic street scenes rendered from the same voxels they label, written in the OpenScene
layout (writer.py) or the Occ3D-nuScenes layout (occ3d_writer.py)."""
from occnet.datasets.synthetic.occ3d_writer import generate_occ3d_dataset
from occnet.datasets.synthetic.writer import generate_dataset

__all__ = ['generate_dataset', 'generate_occ3d_dataset']
