"""occnet's runner hooks."""
from mmengine.hooks import Hook

from occnet.engine.compat import message_hub_from_plain, message_hub_to_plain
from occnet.registry import HOOKS


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Keeps checkpoints loadable with `torch.load(weights_only=True)`: the message hub is
    written as builtins and restored on load (see occnet.engine.compat)."""

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint):
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = message_hub_to_plain(checkpoint['message_hub'])

    def after_load_checkpoint(self, runner, checkpoint):
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = message_hub_from_plain(checkpoint['message_hub'])
