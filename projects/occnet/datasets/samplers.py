"""Samplers that respect scenes."""
import numpy as np
from mmengine.dist import get_dist_info
from torch.utils.data import Sampler

from occnet.registry import DATA_SAMPLERS


def split_scenes_contiguous(scene_ids, num_parts):
    """Split dataset indices into `num_parts` contiguous blocks of whole scenes with sizes
    as equal as scene boundaries allow. scene_ids: (L,) scene id per index, in dataset order.
    Returns a list of num_parts index arrays (some may be empty)."""
    scene_ids = np.asarray(scene_ids)
    length = len(scene_ids)
    starts = np.flatnonzero(np.r_[True, scene_ids[1:] != scene_ids[:-1]]) if length else []
    bounds = [0]
    for part in range(1, num_parts):
        target = part * length / num_parts
        candidates = [s for s in starts if s >= bounds[-1]] or [length]
        bounds.append(int(min(candidates, key=lambda s: abs(s - target))))
    bounds.append(length)
    return [np.arange(bounds[i], bounds[i + 1]) for i in range(num_parts)]


@DATA_SAMPLERS.register_module()
class SceneContiguousSampler(Sampler):
    """Test-time sampler: each rank runs whole scenes, in order, without padding, so the
    previous BEV carried across frames is the same as in a single-process run."""

    def __init__(self, dataset, seed=None, **kwargs):
        rank, world_size = get_dist_info()
        self.indices = split_scenes_contiguous(dataset.scene_ids, world_size)[rank]

    def __iter__(self):
        return iter(self.indices.tolist())

    def __len__(self):
        return len(self.indices)
