"""Runner hooks, crash-safe checkpoints, mixed precision and the torch / mmengine
compatibility shims."""
from occnet.engine.amp import AutocastOptimWrapper
from occnet.engine.checkpoint_io import AtomicLocalBackend, SafeCheckpointHook
from occnet.engine.hooks import PlainCheckpointHook
from occnet.engine.nonfinite_loss import (GuardedAmpOptimWrapper, GuardedOptimWrapper,
                                         NonFiniteGuardMixin, NonFiniteLossError,
                                         NonFiniteLossHook)
from occnet.engine.time_budget import TimeBudgetHook
from occnet.engine.visualization_hook import OccupancyVisualizationHook

__all__ = ['AtomicLocalBackend', 'AutocastOptimWrapper', 'GuardedAmpOptimWrapper',
           'GuardedOptimWrapper', 'NonFiniteGuardMixin', 'NonFiniteLossError',
           'NonFiniteLossHook', 'OccupancyVisualizationHook', 'PlainCheckpointHook',
           'SafeCheckpointHook', 'TimeBudgetHook']
