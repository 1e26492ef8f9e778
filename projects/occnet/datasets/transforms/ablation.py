"""Transforms that remove information on purpose, for control experiments."""
import numpy as np
from mmcv.transforms import BaseTransform

from occnet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ShuffleCameraExtrinsics(BaseTransform):
    """Give each camera image the projection of another camera (a random permutation per
    frame), so the model cannot know where a pixel looks. A model trained and tested this way
    shows how much of its accuracy comes from geometry rather than from priors.

    Args:
        seed: seed of the permutations (the frame token is mixed in, so a frame always gets
            the same permutation).
    """

    def __init__(self, seed=0):
        self.seed = seed

    def transform(self, results):
        token_seed = int(results['token'][:8], 16) if 'token' in results else 0
        rng = np.random.default_rng([self.seed, token_seed])
        num_cams = len(results['lidar2img'])
        perm = rng.permutation(num_cams)
        while num_cams > 1 and np.any(perm == np.arange(num_cams)):
            perm = rng.permutation(num_cams)  # a derangement: no camera keeps its own
        results['lidar2img'] = np.asarray(results['lidar2img'])[perm]
        return results
