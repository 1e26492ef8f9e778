"""Runner hooks, mixed precision and the torch / mmengine compatibility shims."""
from occnet.engine.amp import AutocastOptimWrapper
from occnet.engine.hooks import PlainCheckpointHook
from occnet.engine.visualization_hook import OccupancyVisualizationHook

__all__ = ['AutocastOptimWrapper', 'OccupancyVisualizationHook', 'PlainCheckpointHook']
