"""Refuse a checkpoint that does not fit the model, instead of loading part of it.

mmengine loads `load_from` with strict=False: a checkpoint of another config loads with a
warning, the parts it lacks stay randomly initialised, and a test then reports mIoU 0.0 as if
it were a result. `check_checkpoint_fits` compares the parameter names and shapes first;
`CheckpointFitHook` applies it to every checkpoint the Runner loads (tools/test.py,
`load_from`, --resume), and `occnet.apis.init_model` calls it directly.
`allow_partial=True` (`--allow-partial`, or `allow_partial_checkpoint = True` in a config)
loads the matching part anyway, with mmengine's warning.
"""
import glob
import os
import re

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from occnet.registry import HOOKS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SHOWN = 3  # names listed per kind of mismatch


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's parameter names or shapes differ from the model's."""


def trained_config(checkpoint):
    """Where the checkpoint says it was trained: 'configs/.../<name>.py' when a config of
    that name is in this repository, else the config's name; None when the checkpoint does
    not say. mmengine stores meta['experiment_name'] = '<config name>_<YYYYmmdd_HHMMSS>'."""
    name = (checkpoint.get('meta') or {}).get('experiment_name')
    if not name:
        return None
    name = re.sub(r'_\d{8}_\d{6}$', '', name)
    found = sorted(glob.glob(os.path.join(ROOT, 'configs', '**', name + '.py'), recursive=True))
    return os.path.relpath(found[0], ROOT) if found else name


def strip_prefix(key):
    """A DistributedDataParallel checkpoint's key without its 'module.' prefix (as mmengine's
    revise_keys does on load)."""
    return key[len('module.'):] if key.startswith('module.') else key


def check_checkpoint_fits(model, checkpoint, path):
    """Raise CheckpointMismatchError unless `checkpoint['state_dict']` (or the checkpoint
    itself, when it is a bare state dict) has exactly the model's parameter and buffer names
    with the same shapes. The message names the file, the first keys of each kind, the
    config the checkpoint was trained with and the way out.

    Args:
        model: nn.Module (unwrapped).
        checkpoint: dict loaded from `path`.
        path: the checkpoint file, for the message.
    """
    state = checkpoint.get('state_dict', checkpoint)
    theirs = {strip_prefix(k): tuple(v.shape) for k, v in state.items() if hasattr(v, 'shape')}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    reshaped = [f'{k} {theirs[k]} in the checkpoint, {ours[k]} in the model'
                for k in ours if k in theirs and theirs[k] != ours[k]]
    if not (missing or unexpected or reshaped):
        return
    kinds = (('missing from the checkpoint', missing), ('not in the model', unexpected),
             ('of another shape', reshaped))
    parts = [f'{len(keys)} {what} ({", ".join(keys[:SHOWN])}'
             f'{", ..." if len(keys) > SHOWN else ""})' for what, keys in kinds if keys]
    trained = trained_config(checkpoint)
    origin = (f' It was trained with {trained}: test it with that config.' if trained else
              ' The checkpoint does not name its config.')
    raise CheckpointMismatchError(
        f'checkpoint {path} does not fit the model of this config: parameters '
        f'{"; ".join(parts)}.{origin} To load the matching part anyway and leave the rest as '
        'initialised, pass --allow-partial (tools/train.py, tools/test.py) or '
        'allow_partial=True (init_model).')


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuses, in `after_load_checkpoint`, a checkpoint that does not fit the runner's model
    (check_checkpoint_fits). launch.run adds it to every run that loads a checkpoint, unless
    the config sets `allow_partial_checkpoint = True`."""

    priority = 'VERY_HIGH'

    def __init__(self, path=None):
        self.path = path

    def after_load_checkpoint(self, runner, checkpoint):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        check_checkpoint_fits(model, checkpoint, self.path or runner._load_from)
