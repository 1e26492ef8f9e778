"""Lovasz-softmax variants tried on the forward-backward demo (issue 15) and not kept; see
docs/benchmarks.md, "Where each model puts the vehicles". Not part of occnet: the trial
configs beside this file import it (`custom_imports`) with this folder on PYTHONPATH.

    export PYTHONPATH=benchmarks/fbocc_trials
    python tools/train.py benchmarks/fbocc_trials/eased.py --work-dir work_dirs/trials/eased
"""
import math

import torch
from mmengine.hooks import Hook

from occnet.models.losses.lovasz_softmax import LovaszSoftmaxLoss, lovasz_weights
from occnet.registry import HOOKS, MODELS


@MODELS.register_module()
class LovaszSubsetLoss(LovaszSoftmaxLoss):
    """LovaszSoftmaxLoss whose rows are only the classes of `subset` present in the frame
    (the published loss: every present class). logits (B, K, ...), target (B, ...)."""

    def __init__(self, subset=(0, 4, 5, 6, 7, 8, 9), **kwargs):
        super().__init__(**kwargs)
        self.subset = list(subset)

    def forward(self, logits, target):
        num_classes = logits.shape[1]
        target = target.reshape(-1)
        kept = (target != self.ignore_index).nonzero()[:, 0]
        probs = logits.float().transpose(0, 1).reshape(num_classes, -1).index_select(
            1, kept).softmax(0)
        labels = target[kept]
        rows = torch.tensor(self.subset, device=labels.device)
        rows = rows[torch.bincount(labels, minlength=num_classes)[rows] > 0]
        if len(rows) == 0:
            return probs.sum() * 0.0
        fg = (labels[None, :] == rows[:, None]).to(probs.dtype)
        errors = (fg - probs[rows]).abs()
        return self.loss_weight * (errors * lovasz_weights(errors, fg)).sum(1).mean()


def eased_weight(iteration, max_iters, final):
    """1 at iteration 0, easing along a half cosine to `final` at max_iters."""
    t = iteration / max(1, max_iters)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t))


@HOOKS.register_module()
class LovaszWarmDownHook(Hook):
    """Before each training iteration, set every LovaszSoftmaxLoss's loss_weight to
    eased_weight(iteration, max_iters, final)."""

    def __init__(self, final=0.1):
        self.final = final

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        weight = eased_weight(runner.iter, runner.max_iters, self.final)
        for module in runner.model.modules():
            if isinstance(module, LovaszSoftmaxLoss):
                module.loss_weight = weight
