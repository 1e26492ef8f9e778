"""Random draws shared by all frames of one temporal queue."""
import zlib

import numpy as np


def sample_rng(results, name):
    """A numpy Generator for transform `name` that every frame of a sample's queue gets
    alike: seeded by the sample's `aug_seed` (OpenSceneOccDataset draws one per sample) and by
    `name`, so two transforms do not draw the same numbers. Without `aug_seed` (a pipeline
    run on its own) it is seeded from numpy's global generator."""
    seed = results.get('aug_seed')
    if seed is None:
        seed = np.random.randint(2**31)
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])
