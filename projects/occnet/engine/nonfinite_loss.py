"""What happens when a training loss is NaN or infinite on any process.

Every occnet optimiser wrapper (OptimWrapper, AmpOptimWrapper and AutocastOptimWrapper in the
occnet scope) takes NonFiniteGuardMixin: before each update it checks the loss on every
rank, and when one is not finite it hands the decision to its `nonfinite_handler`, which
NonFiniteLossHook sets from its policy. Nothing of the model or the wrapper is replaced at
run time.
"""
import logging

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from occnet.registry import HOOKS, OPTIM_WRAPPERS

POLICIES = ('stop', 'skip')


class NonFiniteLossError(FloatingPointError):
    """A training loss was NaN or infinite (policy 'stop', or too many skips)."""


def nonfinite_ranks(loss):
    """Ranks whose `loss` is NaN or infinite (one all-reduce when distributed), so every
    rank takes the same decision and none waits in a collective the others skip."""
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    flags = torch.zeros(world, device=loss.device)
    flags[rank] = (~torch.isfinite(loss.detach()).all()).float()  # no host sync here
    if distributed:
        dist.all_reduce(flags)
    return flags.nonzero().flatten().tolist()  # the one sync


class NonFiniteGuardMixin:
    """Optimiser-wrapper mixin (put it before the OptimWrapper class): `update_params` first
    asks every rank whether its loss is finite (nonfinite_ranks, one all-reduce). If every
    loss is, the update runs as usual and `nonfinite_handler(None)` is told; if any is not,
    `nonfinite_handler(bad_ranks)` decides (it raises to stop) and otherwise the update is
    dropped on every rank, gradients cleared. Without a handler (no NonFiniteLossHook) the
    wrapper behaves as its base class."""

    nonfinite_handler = None

    def update_params(self, loss, *args, **kwargs):
        if self.nonfinite_handler is None:
            return super().update_params(loss, *args, **kwargs)
        bad = nonfinite_ranks(loss)
        self.nonfinite_handler(bad or None)
        if bad:
            self.zero_grad()
            return None
        return super().update_params(loss, *args, **kwargs)


@OPTIM_WRAPPERS.register_module(name='OptimWrapper')
class GuardedOptimWrapper(NonFiniteGuardMixin, OptimWrapper):
    """mmengine's OptimWrapper with the non-finite loss guard (`type='OptimWrapper'` in the
    occnet scope)."""


@OPTIM_WRAPPERS.register_module(name='AmpOptimWrapper')
class GuardedAmpOptimWrapper(NonFiniteGuardMixin, AmpOptimWrapper):
    """mmengine's AmpOptimWrapper (fp16 with loss scaling) with the non-finite loss guard."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Decides what happens when a training loss is not finite on some process: the handler
    of the run's optimiser wrapper (NonFiniteGuardMixin), which checks the loss on every
    process before each update.

    Every process reports the ranks whose loss was non-finite (mmengine shows only rank 0's
    log lines on the console; errors are shown from every rank).

    Args:
        policy: 'stop' raises NonFiniteLossError naming the iteration, the ranks, and the loss
            terms and frame tokens of the raising process's batch; 'skip' drops the update (no
            backward, gradients cleared), logs the same details and counts it
            (`train/nonfinite_skips` in the message hub).
        max_skips: with 'skip', stop once this many updates were skipped in a row.
    """

    priority = 'HIGH'

    def __init__(self, policy='stop', max_skips=10):
        if policy not in POLICIES:
            raise ValueError(f"NonFiniteLossHook policy must be one of {POLICIES}, got "
                             f"'{policy}'")
        self.policy, self.max_skips = policy, max_skips
        self.skipped = self.in_a_row = 0
        self._tokens = []

    def before_train(self, runner):
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, NonFiniteGuardMixin):
            raise TypeError(f'NonFiniteLossHook needs an optimiser wrapper with '
                            f'NonFiniteGuardMixin; {type(wrapper).__name__} has none. Use '
                            "type='OptimWrapper', 'AmpOptimWrapper' or 'AutocastOptimWrapper' "
                            'in the occnet scope, or remove the hook from custom_hooks')
        wrapper.nonfinite_handler = lambda bad: self._after_check(runner, bad)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        samples = (data_batch or {}).get('data_samples') or []
        self._tokens = [s.get('token') if hasattr(s, 'get') else getattr(s, 'token', None)
                        for s in samples]

    def _after_check(self, runner, bad_ranks):
        if not bad_ranks:
            self.in_a_row = 0
            return
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        losses = getattr(model, 'last_loss_terms', None) or {}
        terms = ', '.join(f'{name}={float(value.float().mean()):.4g}'
                          for name, value in losses.items())
        where = (f'iteration {runner.iter + 1} (epoch {runner.epoch + 1}), non-finite on '
                 f'rank(s) {bad_ranks}; rank {runner.rank}: loss terms {terms or "-"}, frame '
                 f'tokens {self._tokens}')
        if self.policy == 'stop':
            raise NonFiniteLossError(f'non-finite training loss at {where}. Lower the learning '
                                     'rate, check these frames (tools/browse_dataset.py), or set '
                                     "NonFiniteLossHook(policy='skip')")
        self.skipped += 1
        self.in_a_row += 1
        runner.message_hub.update_info('train/nonfinite_skips', self.skipped)
        print_log(f'skipped the update of {where} ({self.skipped} skipped so far)',
                  logger='current', level=logging.WARNING)
        if self.in_a_row >= self.max_skips:
            raise NonFiniteLossError(f'{self.in_a_row} non-finite losses in a row, the last '
                                     f'at {where}; stopping (max_skips={self.max_skips})')
