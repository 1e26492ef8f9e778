"""Runner hooks and the torch / mmengine compatibility shims."""
from occnet.engine.hooks import PlainCheckpointHook
from occnet.engine.visualization_hook import OccupancyVisualizationHook

__all__ = ['OccupancyVisualizationHook', 'PlainCheckpointHook']
