"""OpenScene dataset, samplers and transforms (importing registers them)."""
from occnet.datasets import transforms  # noqa: F401
from occnet.datasets.collate import occ_collate
from occnet.datasets.openscene_dataset import OpenSceneOccDataset
from occnet.datasets.samplers import SceneContiguousSampler

__all__ = ['OpenSceneOccDataset', 'SceneContiguousSampler', 'occ_collate']
