"""occnet's runner hooks."""
from mmengine.hooks import Hook

from occnet.engine.compat import message_hub_from_plain, message_hub_to_plain
from occnet.engine.rng_state import capture_rng_states, restore_rng_states
from occnet.registry import HOOKS


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Keeps checkpoints loadable with `torch.load(weights_only=True)`: the message hub is
    written as builtins and restored on load (see occnet.engine.compat). Also stores the
    random generators' states (`rng_states`, engine/rng_state.py) and restores them when a
    run resumes, so the resumed run draws the same dropout, augmentation and sampling
    numbers as an uninterrupted one. Data workers need no saved state: with the training
    sampler SeededSampler, each sample's draws are seeded by (seed, epoch, index)
    (datasets/samplers.py)."""

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint):
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = message_hub_to_plain(checkpoint['message_hub'])
        checkpoint['rng_states'] = capture_rng_states()

    def after_load_checkpoint(self, runner, checkpoint):
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = message_hub_from_plain(checkpoint['message_hub'])
        # applied in before_train, after mmengine's resume may have re-seeded everything
        self._resumed_rng = checkpoint.get('rng_states') if getattr(runner, '_resume', False) \
            else None

    def before_train(self, runner):
        if getattr(self, '_resumed_rng', None) is not None:
            restore_rng_states(self._resumed_rng)
            self._resumed_rng = None
