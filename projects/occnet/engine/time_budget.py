"""Train for a wall-clock budget, not an iteration count, with the schedule following the
clock.

A comparison "under the same wall-clock budget" that fixes each model's iteration count
from short timing runs drifts with the machine: on a shared CPU a model's step can run
10-25% faster or slower during training than it was timed, so the budget used differs by
as much. `TimeBudgetHook` makes the budget exact: every model trains until budget_s
seconds of its training loop have passed, and its learning rate follows the fraction of the
budget spent, so the schedule (linear warm-up, cosine decay) ends at the budget whatever
the speed.

    train_cfg = dict(type='IterBasedTrainLoop', max_iters=10 ** 9, val_interval=10 ** 9)
    param_scheduler = None  # the hook sets the learning rate
    custom_hooks = [..., dict(type='TimeBudgetHook', budget_s=480)]
"""
import math
import time

import torch
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import Hook

from occnet.registry import HOOKS


def budget_lr_factor(progress, step, warmup_iters=50, warmup_start=0.1, eta_min_ratio=0.01):
    """The learning rate's multiplier at `progress` (fraction of the budget spent, clipped
    to [0, 1]) and iteration `step` (0-based): a linear warm-up over the first warmup_iters
    iterations from warmup_start to 1, times a cosine decay over the budget from 1 to
    eta_min_ratio. The product of mmengine's LinearLR and CosineAnnealingLR(eta_min_ratio)
    with time in place of the cosine's iterations."""
    progress = min(max(progress, 0.0), 1.0)
    cosine = eta_min_ratio + (1.0 - eta_min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if step < warmup_iters:
        cosine *= warmup_start + (1.0 - warmup_start) * step / warmup_iters
    return cosine


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """Stops an iteration-based training loop once budget_s seconds of training have passed
    and sets the learning rate from the time spent (budget_lr_factor).

    The clock starts at the first iteration (after the model, data and any resumed
    checkpoint are loaded, and after a resume's skipped batches) and counts everything in
    the loop from there: data loading, steps, logging, checkpoints. Each iteration's rate
    comes from the time spent when the previous one ended.
    When the time is up, the loop's max_iters becomes the current iteration + 1, so the
    current iteration is the last one and the checkpoint hook saves it as the final
    checkpoint (save_last). The elapsed seconds are kept in the message hub
    (`time_budget_elapsed_s`), so a resumed run continues the budget it had spent (and
    trains nothing when the budget was already spent). Under
    DDP rank 0's clock decides, so every rank sets the same rate and stops together. The
    log's `eta` is the time left of the budget, and its iteration total the number the time
    left allows at the speed so far (never past the config's max_iters, which still ends
    the run if reached first).

    Args:
        budget_s: training seconds.
        warmup_iters, warmup_start, eta_min_ratio: the schedule (budget_lr_factor).
        clock: seconds source, time.perf_counter (a test passes its own).
    """

    priority = 55  # after IterTimerHook (its eta), before LoggerHook and the checkpoint hook

    def __init__(self, budget_s, warmup_iters=50, warmup_start=0.1, eta_min_ratio=0.01,
                 clock=time.perf_counter):
        if not budget_s > 0:
            raise ValueError(f'TimeBudgetHook: budget_s must be > 0 seconds, got {budget_s!r}')
        self.budget_s, self.clock = float(budget_s), clock
        self.schedule = dict(warmup_iters=warmup_iters, warmup_start=warmup_start,
                             eta_min_ratio=eta_min_ratio)

    def elapsed(self):
        """Seconds of the budget spent, rank 0's under DDP."""
        seconds = self._spent_before
        if self._start is not None:
            seconds += self.clock() - self._start
        if get_world_size() > 1:
            value = torch.tensor([seconds], dtype=torch.float64)
            broadcast(value, 0)
            seconds = float(value)
        return seconds

    def before_train(self, runner):
        if getattr(runner, 'param_schedulers', None):
            raise ValueError('TimeBudgetHook sets the learning rate from the time spent; the '
                             'config also has param_scheduler, which would fight it: set '
                             'param_scheduler = None in the config')
        self._spent_before = float(runner.message_hub.get_info('time_budget_elapsed_s', 0.0))
        self._last_elapsed = self._spent_before
        self._start = None  # at the first iteration: a resume's skipped batches do not count
        self._first_iter, self._max_iters = runner.iter, runner.train_loop.max_iters
        for group in self._param_groups(runner):
            group.setdefault('initial_lr', group['lr'])
        if self._spent_before >= self.budget_s:  # resumed after the budget was spent
            runner.train_loop._max_iters = runner.iter
            return
        # each iteration's rate is set before it starts (here, then in after_train_iter), so
        # RuntimeInfoHook's before_train_iter logs the rate the iteration runs with
        self._set_lr(runner, self._spent_before, runner.iter)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self._start is None:
            self._start = self.clock()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        elapsed = self._last_elapsed = self.elapsed()
        runner.message_hub.update_info('time_budget_elapsed_s', elapsed)
        runner.message_hub.update_info('eta', max(self.budget_s - elapsed, 0.0))
        done = runner.iter + 1
        if elapsed >= self.budget_s:
            runner.train_loop._max_iters = done
            runner.logger.info(f'time budget of {self.budget_s:.0f} s spent: stopping after '
                               f'iteration {done}')
            return
        # the log's [iteration/total]: the total the remaining time allows so far
        per_iter = max(elapsed - self._spent_before, 1e-9) / (done - self._first_iter)
        estimate = done + max(1, math.ceil((self.budget_s - elapsed) / per_iter))
        runner.train_loop._max_iters = min(self._max_iters, estimate)
        self._set_lr(runner, elapsed, done)

    def after_train(self, runner):
        # the time at the last iteration's end, not counting the final checkpoint's save
        runner.logger.info(f'time budget: {self._last_elapsed:.1f} s of {self.budget_s:.0f} s '
                           f'in {runner.iter} iterations')

    def _set_lr(self, runner, elapsed, step):
        factor = budget_lr_factor(elapsed / self.budget_s, step, **self.schedule)
        for group in self._param_groups(runner):
            group['lr'] = group['initial_lr'] * factor

    @staticmethod
    def _param_groups(runner):
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if hasattr(wrapper, 'values') else [wrapper]
        return [group for w in wrappers for group in w.optimizer.param_groups]


UNBOUNDED_ITERS = 10 ** 9  # a budgeted run's max_iters: the clock stops it first


def schedule_from_config(param_scheduler, base_lr=None):
    """TimeBudgetHook's schedule (warmup_iters, warmup_start, eta_min_ratio) equivalent to
    a config's param_scheduler: an iteration-based LinearLR warm-up from step 0 (to factor
    1) and / or a CosineAnnealingLR over the whole run (begin 0, T_max = end - begin), the
    schedules occnet's configs use. None or [] is a constant rate. Anything else raises
    ValueError naming the scheduler and what it cannot map."""
    schedulers = param_scheduler or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    warmup_iters, warmup_start, eta_min_ratio = 0, 1.0, 1.0
    for scheduler in schedulers:
        kind = scheduler.get('type')
        kind = getattr(kind, '__name__', str(kind))
        if scheduler.get('begin', 0) != 0:
            raise ValueError(f'--time-budget: {kind} starts at begin={scheduler["begin"]}; '
                             'it can lay only schedules that start at step 0 over the clock')
        if kind.endswith('LinearLR'):
            if scheduler.get('by_epoch', True) or scheduler.get('end') is None:
                raise ValueError('--time-budget: the LinearLR warm-up must count iterations '
                                 '(by_epoch=False, end=<iterations>) to be laid over the clock')
            if scheduler.get('end_factor', 1.0) != 1.0:
                raise ValueError('--time-budget: LinearLR with end_factor != 1 is a decay, '
                                 'not a warm-up; give the config a TimeBudgetHook instead')
            warmup_iters = int(scheduler['end'])
            warmup_start = float(scheduler.get('start_factor', 1.0 / 3))
        elif kind.endswith('CosineAnnealingLR'):
            t_max, end = scheduler.get('T_max'), scheduler.get('end')
            if t_max is not None and end is not None and t_max != end:
                raise ValueError(f'--time-budget: CosineAnnealingLR with T_max={t_max} and '
                                 f'end={end} does not decay over its whole span')
            if scheduler.get('eta_min_ratio') is not None and scheduler.get('eta_min'):
                raise ValueError('--time-budget: CosineAnnealingLR sets both eta_min and '
                                 'eta_min_ratio; keep one')
            if scheduler.get('eta_min_ratio') is not None:
                eta_min_ratio = float(scheduler['eta_min_ratio'])
            elif not scheduler.get('eta_min'):
                eta_min_ratio = 0.0
            elif base_lr:
                eta_min_ratio = float(scheduler['eta_min']) / float(base_lr)
            else:
                raise ValueError('--time-budget: CosineAnnealingLR(eta_min=...) needs the '
                                 "optimizer's lr to become a ratio; set eta_min_ratio instead")
        else:
            raise ValueError(f'--time-budget cannot lay the {kind} schedule over the clock '
                             '(it knows LinearLR warm-up and CosineAnnealingLR): give the '
                             'config a TimeBudgetHook with its own schedule instead')
    return warmup_iters, warmup_start, eta_min_ratio


def apply_time_budget(cfg, budget_s, checkpoint_interval=500):
    """Turn a config (mmengine Config, changed in place) into a run of budget_s seconds of
    training: an iteration loop the clock stops (TimeBudgetHook appended to custom_hooks,
    replacing any there), the config's warm-up and cosine decay laid over the budget
    (schedule_from_config) instead of its epochs, a checkpoint every checkpoint_interval
    iterations and at the end, and no validation inside the budget (run tools/test.py on
    the last checkpoint; the val loop is not built). The log counts iterations, whose total
    is the hook's estimate. Returns the hook's settings."""
    base_lr = ((cfg.get('optim_wrapper') or {}).get('optimizer') or {}).get('lr')
    warmup_iters, warmup_start, eta_min_ratio = schedule_from_config(
        cfg.get('param_scheduler'), base_lr)
    hook = dict(type='TimeBudgetHook', budget_s=float(budget_s), warmup_iters=warmup_iters,
                warmup_start=warmup_start, eta_min_ratio=eta_min_ratio)
    TimeBudgetHook(**{k: v for k, v in hook.items() if k != 'type'})  # checks the budget
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=UNBOUNDED_ITERS,
                         val_begin=UNBOUNDED_ITERS + 1, val_interval=UNBOUNDED_ITERS + 1)
    cfg.param_scheduler = None
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.log_processor = {**(cfg.get('log_processor') or {}), 'by_epoch': False}
    cfg.custom_hooks = [h for h in (cfg.get('custom_hooks') or [])
                        if not str(h.get('type')).endswith('TimeBudgetHook')] + [hook]
    default_hooks = cfg.get('default_hooks') or {}
    if default_hooks.get('checkpoint') is not None:
        default_hooks['checkpoint'].update(by_epoch=False, interval=int(checkpoint_interval))
        cfg.default_hooks = default_hooks
    return hook
