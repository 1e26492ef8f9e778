"""Samplers that respect scenes, and training indices that seed their sample's draws."""
import random

import numpy as np
from mmengine.dataset import DefaultSampler
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


class SeededIndex(int):
    """A dataset index that carries the epoch and the seed of the sampler that drew it."""

    def __new__(cls, index, epoch, seed):
        value = super().__new__(cls, index)
        value.epoch, value.seed = int(epoch), int(seed)
        return value

    def __reduce__(self):  # to a worker process through the index queue
        return SeededIndex, (int(self), self.epoch, self.seed)


@DATA_SAMPLERS.register_module()
class SeededSampler(DefaultSampler):
    """mmengine's DefaultSampler (the same indices, shuffled per epoch), each index yielded as
    a SeededIndex. The dataset seeds numpy's and Python's generators from (seed, epoch,
    index) before it builds the sample (seed_sample_draws), so a sample's random draws
    (augmentation, history frames, a replacement for a skipped frame) do not depend on which
    data worker builds it or on what that worker drew before. A run killed and resumed with
    data workers then draws what the uninterrupted run drew, bitwise: nothing of the
    workers' random state needs to be in the checkpoint. Takes DefaultSampler's arguments."""

    def __iter__(self):
        return (SeededIndex(index, self.epoch, self.seed) for index in super().__iter__())


def seed_sample_draws(index):
    """Seed numpy's global generator and Python's `random` from a SeededIndex's (seed, epoch,
    index); any other index leaves them as they are."""
    if isinstance(index, SeededIndex):
        numpy_seed, python_seed = np.random.SeedSequence(
            [index.seed, index.epoch, int(index)]).generate_state(2)
        np.random.seed(int(numpy_seed))
        random.seed(int(python_seed))
