"""What happens when a training loss is NaN or infinite on any process."""
import logging

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.logging import print_log

from occnet.registry import HOOKS

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


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Checks the training loss on every process before each optimiser update.

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
        self._tokens, self._losses = [], {}

    def before_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        parse_losses = model.parse_losses

        def recording_parse_losses(losses):
            self._losses = {k: v.detach() for k, v in losses.items()
                            if isinstance(v, torch.Tensor)}
            return parse_losses(losses)
        model.parse_losses = recording_parse_losses
        wrapper = runner.optim_wrapper
        update_params = wrapper.update_params

        def guarded_update_params(loss, *args, **kwargs):
            bad = nonfinite_ranks(loss)
            if not bad:
                self.in_a_row = 0
                return update_params(loss, *args, **kwargs)
            self._non_finite(runner, bad)
            wrapper.zero_grad()
        wrapper.update_params = guarded_update_params

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        samples = (data_batch or {}).get('data_samples') or []
        self._tokens = [s.get('token') if hasattr(s, 'get') else getattr(s, 'token', None)
                        for s in samples]

    def _non_finite(self, runner, bad_ranks):
        terms = ', '.join(f'{name}={float(value.float().mean()):.4g}'
                          for name, value in self._losses.items())
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
