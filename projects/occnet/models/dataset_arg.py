"""Hand a model's dataset (a name, an OccDescription or a metainfo dict) to the parts it
builds, so a config names the dataset once, on the model."""
import inspect

from occnet.registry import MODELS


def takes_dataset(cfg):
    """Whether the registered class of the config `cfg` has a `dataset` argument, in its
    __init__ or, through **kwargs, in a base class's (FBOccEncoder's BEVFormerEncoder)."""
    part = cfg.get('type')
    if isinstance(part, str):
        part = MODELS.get(part)
    if part is None:  # no or an unknown type: MODELS.build says so
        return False
    inits = ([k.__dict__['__init__'] for k in part.__mro__ if '__init__' in k.__dict__]
             if inspect.isclass(part) else [part])
    for init in inits:
        params = inspect.signature(init).parameters.values()
        if any(p.name == 'dataset' for p in params):
            return True
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return False
    return False


def with_dataset(cfg, dataset):
    """A copy of the part config `cfg` with `dataset` set, unless it names its own or its
    class takes no `dataset` argument; None stays None."""
    if cfg is None or not takes_dataset(cfg):
        return cfg
    cfg = dict(cfg)
    cfg.setdefault('dataset', dataset)
    return cfg
