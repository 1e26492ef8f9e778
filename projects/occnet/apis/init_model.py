"""Building a model from its config and loading a checkpoint, without the Runner."""
import os
import warnings

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_state_dict

import occnet.datasets  # noqa: F401  (registers the datasets and transforms)
import occnet.models  # noqa: F401  (registers the models)
from occnet.engine.checkpoint_fit import check_checkpoint_fits, strip_prefix
from occnet.engine.checkpoint_io import check_checkpoint, load_safely
from occnet.engine.launch import apply_runtime_options
from occnet.registry import MODELS


def load_config(config, cfg_options=None):
    """An mmengine Config from a config path or a Config (copied, so the caller's stays as
    it was), with `cfg_options` ({'model.bev_encoder.bev_h': 25, ...}) merged."""
    if isinstance(config, (str, os.PathLike)):
        if not os.path.isfile(config):
            raise FileNotFoundError(f'config {config} does not exist (configs/ holds the '
                                    'shipped ones)')
        cfg = Config.fromfile(os.fspath(config))
    elif isinstance(config, Config):
        cfg = config.copy()
    else:
        raise TypeError(f'init_model takes a config path or an mmengine Config, got '
                        f'{type(config).__name__}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def pick_device(device):
    """`device`, or 'cpu' with a warning when CUDA is asked for and there is none."""
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        warnings.warn(f"init_model: device '{device}' was asked for but CUDA is not available "
                      "here; running on the CPU (pass device='cpu' to silence this)",
                      stacklevel=3)
        return torch.device('cpu')
    return device


def load_weights(model, path, allow_partial=False):
    """Load checkpoint `path` into `model` the way tools/test.py does.

    The file is refused first if it is missing, corrupt or holds anything but tensors and
    builtins (checkpoint_io.check_checkpoint), then loaded with torch.load(weights_only=True);
    unless `allow_partial`, a checkpoint whose parameter names or shapes differ from the
    model's raises CheckpointMismatchError naming the keys and the config it was trained with
    (checkpoint_fit.check_checkpoint_fits). A 'module.' prefix (DDP) is stripped. With
    `allow_partial`, the matching parameters load and the rest stay as initialised, with
    mmengine's warning listing them.
    """
    check_checkpoint(path)
    checkpoint = load_safely(path)
    if not allow_partial:
        check_checkpoint_fits(model, checkpoint, path)
    state = checkpoint.get('state_dict', checkpoint)
    state = {strip_prefix(k): v for k, v in state.items() if k != '_metadata'}
    load_state_dict(model, state, strict=not allow_partial, logger='current')
    return checkpoint


def init_model(config, checkpoint=None, device='cuda', allow_partial=False, cfg_options=None):
    """An occnet model ready for `inference_occ`, from a plain Python session or notebook.

    Builds `config['model']` with occnet's registry (no registry scope or mmengine call is
    needed from the caller, and none is left set), loads `checkpoint` (`load_weights`), moves
    the model to `device` and puts it in eval mode.

    Args:
        config: config file path or mmengine Config (e.g. configs/bevformer_occ/...py).
        checkpoint: .pth file written by tools/train.py, or None for the initial weights.
        device: 'cuda', 'cuda:1', 'cpu' or a torch.device. Asking for CUDA on a machine
            without it falls back to the CPU with a warning, so one notebook runs anywhere.
        allow_partial: load a checkpoint that does not fit the model in full (the
            parameters it lacks stay as initialised); refused by default.
        cfg_options: optional {'dotted.key': value} overrides, as --cfg-options.
    Returns:
        the model (nn.Module) in eval mode, with `model.cfg` the Config it was built from
        (inference_occ reads its test pipeline and dataset) and `model.checkpoint_meta` the
        checkpoint's `meta` dict ({} without one).
    """
    cfg = load_config(config, cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'config {getattr(cfg, "filename", config)} has no `model`')
    apply_runtime_options(cfg)  # e.g. the config's msda_backend
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'occnet')):
        model = MODELS.build(cfg.model)
    meta = {}
    if checkpoint is not None:
        meta = load_weights(model, os.fspath(checkpoint), allow_partial).get('meta') or {}
    model.to(pick_device(device))
    model.eval()
    model.cfg = cfg
    model.checkpoint_meta = meta
    return model
