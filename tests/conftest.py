"""Shared fixtures: the occnet registry scope and a tiny synthetic OpenScene data root."""
import os

import pytest
from mmengine.registry import init_default_scope

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_SEED, TINY_FRAMES_PER_LOG = 3, 6  # the tiny data root's generator settings


@pytest.fixture(autouse=True, scope='session')
def occnet_scope():
    import occnet.datasets  # noqa: F401  (registers transforms, datasets)
    import occnet.models  # noqa: F401
    init_default_scope('occnet')


@pytest.fixture(scope='session')
def tiny_data_root(tmp_path_factory):
    """2 logs x 6 frames (scenes of 3 frames), 160x90 images, collected into train/val infos
    (one log each)."""
    from occnet.datasets.collect import collect
    from occnet.datasets.synthetic import generate_dataset
    import pickle
    root = tmp_path_factory.mktemp('openscene-tiny')
    generate_dataset(root, num_logs=2, frames_per_log=TINY_FRAMES_PER_LOG, image_size=(160, 90),
                     seed=TINY_SEED, frames_per_scene=3, log=None)
    train, val, _ = collect(str(root), 'mini', val_ratio=0.5, seed=0)
    for name, frames in (('train', train), ('val', val)):
        with open(root / f'openscene_mini_{name}.pkl', 'wb') as f:
            pickle.dump(frames, f, protocol=4)
    return root


def make_lidar_root(tmp_path_factory, name, image_size, seed):
    """1 log x 2 frames (one scene) with lidar sweeps, collected into `infos.pkl`."""
    from occnet.datasets.collect import collect
    from occnet.datasets.synthetic import generate_dataset
    import pickle
    root = tmp_path_factory.mktemp(name)
    generate_dataset(root, num_logs=1, frames_per_log=2, image_size=image_size, seed=seed,
                     frames_per_scene=2, with_lidar=True, log=None)
    train, _, _ = collect(str(root), 'mini', val_ratio=0.0)
    with open(root / 'infos.pkl', 'wb') as f:
        pickle.dump(train, f, protocol=4)
    return root
