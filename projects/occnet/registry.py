"""occnet registries: children of mmengine's roots under the scope 'occnet'.

Configs set `default_scope = 'occnet'`; building a `type` then imports the `locations` below,
so a config never needs `custom_imports`. Every other root the Runner builds from (loops,
optimizers, schedulers, visualizers, log processors, ...) gets an empty 'occnet' child too:
a lookup there falls through to mmengine's registry, and mmengine does not warn "Failed to
search registry with scope occnet" at every start.
"""
import mmengine.registry as mmengine_registry
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='occnet', locations=['occnet.models'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='occnet',
                    locations=['occnet.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='occnet',
                      locations=['occnet.datasets.transforms'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, scope='occnet',
                         locations=['occnet.datasets'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='occnet',
                   locations=['occnet.evaluation'])
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, scope='occnet',
                     locations=['occnet.datasets'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='occnet', locations=['occnet.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='occnet',
                          locations=['occnet.engine'])


# the roots occnet adds nothing to; importing mmengine.runner registers what they hold
def _pass_through(root):
    """An empty 'occnet' child of mmengine's `root`: lookups fall through to the root."""
    return Registry(root.name, parent=root, scope='occnet', locations=['mmengine.runner'])


PASS_THROUGH = {name: _pass_through(getattr(mmengine_registry, name)) for name in (
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'STRATEGIES', 'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS',
    'EVALUATOR', 'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'INFERENCERS')}
