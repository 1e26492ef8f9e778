"""The one place where occnet adapts mmengine 0.10 to current PyTorch.

torch >= 2.6 loads checkpoints with `weights_only=True`, which refuses every class that is
not allow-listed. mmengine stores its message hub in checkpoints as `HistoryBuffer` objects
whose pickles call `getattr` on the class: allow-listing that would let a crafted file run
code. Instead occnet writes the message hub as plain builtins (`message_hub_to_plain`) and
rebuilds the buffers on load (`message_hub_from_plain`), so checkpoints load with
`weights_only=True` and no allow-list at all.
"""
import numpy as np
from mmengine.logging.history_buffer import HistoryBuffer

_BUFFER_TAG = '__occnet_history_buffer__'


def to_builtin(value):
    """numpy scalars/arrays -> Python numbers/lists, recursively through dicts, lists, tuples."""
    if isinstance(value, dict):
        return {k: to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_builtin(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def message_hub_to_plain(state):
    """A MessageHub state dict with every HistoryBuffer and numpy value as builtins."""
    plain = dict(state)
    plain['log_scalars'] = {
        key: {_BUFFER_TAG: True, 'log': buf._log_history.tolist(),
              'count': buf._count_history.tolist(), 'max_length': buf.max_length}
        for key, buf in state.get('log_scalars', {}).items()}
    for key in ('runtime_info', 'resumed_keys'):
        if key in plain:
            plain[key] = to_builtin(plain[key])
    return plain


def message_hub_from_plain(state):
    """Inverse of `message_hub_to_plain` (states saved by plain mmengine pass through)."""
    restored = dict(state)
    restored['log_scalars'] = {
        key: HistoryBuffer(buf['log'], buf['count'], buf['max_length'])
        if isinstance(buf, dict) and buf.get(_BUFFER_TAG) else buf
        for key, buf in state.get('log_scalars', {}).items()}
    return restored
