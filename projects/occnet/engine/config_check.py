"""Config mistakes caught before anything is built, each with the key path and the fix.

`check_config(cfg)` walks the model section and the datasets (with their pipelines) of the
dataloaders present. For every dict with a `type` it checks that the type is registered
(listing the closest registered names otherwise) and that every other key is an argument
of that class (naming the closest valid one). A dataset's `data_root` must exist.
"""
import difflib
import inspect
import os

from mmengine.registry import init_default_scope

from occnet.registry import DATASETS, MODELS, TRANSFORMS

SECTIONS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class ConfigError(ValueError):
    """A config names something that does not exist."""


def _registered_names(registry):
    names = set(registry.module_dict)
    parent = registry.parent
    while parent is not None:
        names |= set(parent.module_dict)
        parent = parent.parent
    return sorted(names)


def accepted_arguments(cls):
    """Keyword arguments `cls(...)` accepts, or None when it takes any (**kwargs all the way
    up). Follows **kwargs into the base classes' __init__."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names - {'self'}
        if klass.__module__.startswith('torch.'):
            return None  # nn.Module.__init__(*args, **kwargs)
    return None


def _closest(word, options):
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ''


def _check_typed(cfg, path, registry, problems):
    """Check one dict with `type` and recurse into its typed values."""
    type_name = cfg['type']
    cls = registry.get(type_name) if isinstance(type_name, str) else type_name
    if cls is None:
        names = _registered_names(registry)
        close = difflib.get_close_matches(type_name, names, n=3, cutoff=0.5)
        problems.append(f"{path}.type: '{type_name}' is not a registered {registry.name}; "
                        + (f'closest: {close}' if close else f'registered: {names}'))
        return
    accepted = accepted_arguments(cls)
    for key, value in cfg.items():
        if key == 'type':
            continue
        if accepted is not None and key not in accepted:
            problems.append(f'{path}.{key}: {cls.__name__} has no argument {key!r}'
                            f'{_closest(key, accepted)}')
        _check_value(value, f'{path}.{key}', registry, problems)


def _check_value(value, path, registry, problems):
    if isinstance(value, dict) and 'type' in value:
        _check_typed(value, path, registry, problems)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(item, f'{path}[{i}]', registry, problems)


def check_config(cfg, sections=SECTIONS):
    """Raise ConfigError listing every problem found (see the module docstring) in the model
    and in the datasets of `sections` (the dataloaders the run will build)."""
    init_default_scope(cfg.get('default_scope', 'occnet'))
    problems = []
    if cfg.get('model'):
        _check_value(dict(cfg.model), 'model', MODELS, problems)
    for section in sections:
        dataset = (cfg.get(section) or {}).get('dataset')
        if not dataset:
            continue
        dataset = dict(dataset)
        pipeline = dataset.pop('pipeline', [])
        _check_value(dataset, f'{section}.dataset', DATASETS, problems)
        _check_value(list(pipeline), f'{section}.dataset.pipeline', TRANSFORMS, problems)
        root = dataset.get('data_root')
        if root and not os.path.isdir(root):
            problems.append(f'{section}.dataset.data_root: {root} does not exist. Expected the '
                            'OpenScene folder (docs/data.md), or pass --cfg-options '
                            f'{section}.dataset.data_root=/path/to/openscene/')
    if problems:
        raise ConfigError('config problems:\n  ' + '\n  '.join(problems))
