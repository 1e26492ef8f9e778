"""Runner hooks and the torch / mmengine compatibility shims."""
from occnet.engine.hooks import PlainCheckpointHook

__all__ = ['PlainCheckpointHook']
