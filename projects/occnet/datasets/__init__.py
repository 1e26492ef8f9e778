"""OpenScene and Occ3D-nuScenes datasets, samplers and transforms (importing registers
them)."""
from occnet.datasets import transforms  # noqa: F401
from occnet.datasets.collate import occ_collate
from occnet.datasets.occ3d_dataset import Occ3DNuScenesDataset
from occnet.datasets.openscene_dataset import OpenSceneOccDataset
from occnet.datasets.samplers import SceneContiguousSampler, SeededSampler

__all__ = ['Occ3DNuScenesDataset', 'OpenSceneOccDataset', 'SceneContiguousSampler', 'SeededSampler',
           'occ_collate']
