"""A NaN loss on one of two processes: 'stop' ends the job with the iteration, the loss terms
and the tokens; 'skip' drops that update on every process and training goes on."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT
from occnet.engine.nonfinite_loss import NonFiniteLossHook
from test_tools_e2e import CONFIG, free_port, tiny_options

POISON_RANK1_SECOND_LOSS = """
import os
if os.environ.get('RANK') is not None and os.environ.get('LOCAL_RANK') is not None:
    from occnet.models.detectors import bevformer_occ
    real = bevformer_occ.BEVFormerOcc.loss
    calls = [0]
    def loss(self, imgs, data_samples):
        out = real(self, imgs, data_samples)
        calls[0] += 1
        if os.environ['RANK'] == '1' and calls[0] == 2:
            out = {k: v * float('nan') for k, v in out.items()}
        return out
    bevformer_occ.BEVFormerOcc.loss = loss
"""


def dist_train(tmp_path, tiny_data_root, *extra):
    inject = tmp_path / 'inject'
    inject.mkdir(exist_ok=True)
    (inject / 'sitecustomize.py').write_text(POISON_RANK1_SECOND_LOSS)
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', PORT=str(free_port()),
               PYTHONPATH=os.pathsep.join([str(inject), os.environ.get('PYTHONPATH', '')]))
    work = tmp_path / 'work'
    result = subprocess.run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(work),
                             '--cfg-options', *tiny_options(tiny_data_root, max_epochs=1),
                             *extra], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    return result, work


def test_stop_policy_names_iteration_rank_terms_and_tokens(tiny_data_root, tmp_path):
    result, _ = dist_train(tmp_path, tiny_data_root)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert 'non-finite training loss at iteration 2 (epoch 1), non-finite on rank(s) [1]' in log
    assert 'rank 1: loss terms loss_occ=nan, frame tokens [\'' in log
    assert "policy='skip'" in log  # the way out is named


def test_skip_policy_drops_the_update_everywhere_and_goes_on(tiny_data_root, tmp_path):
    result, work = dist_train(tmp_path, tiny_data_root, 'custom_hooks.1.policy=skip')
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    # rank 0 (whose loss was finite) logs the skip it took together with rank 1
    assert ('skipped the update of iteration 2 (epoch 1), non-finite on rank(s) [1]; rank 0: '
            'loss terms loss_occ=') in log
    checkpoint = torch.load(work / 'epoch_1.pth', weights_only=True)
    assert checkpoint['meta']['iter'] == 3
    assert all(torch.isfinite(t).all() for t in checkpoint['state_dict'].values()
               if t.is_floating_point())


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="one of \\('stop', 'skip'\\)"):
        NonFiniteLossHook(policy='ignore')


@pytest.mark.parametrize('wrapper', [dict(type='OptimWrapper'),
                                     dict(type='AutocastOptimWrapper', dtype='bfloat16')])
def test_every_occnet_wrapper_guards_its_update(wrapper):
    # built in the occnet scope as the Runner builds it: the update of a NaN loss is dropped
    # and the handler hears of it; a finite loss updates as usual
    from mmengine.registry import OPTIM_WRAPPERS, init_default_scope

    from occnet.engine.nonfinite_loss import NonFiniteGuardMixin
    init_default_scope('occnet')
    model = torch.nn.Linear(2, 1)
    optim = OPTIM_WRAPPERS.build(dict(wrapper, optimizer=torch.optim.SGD(model.parameters(),
                                                                         lr=0.1)))
    assert isinstance(optim, NonFiniteGuardMixin)
    heard = []
    optim.nonfinite_handler = heard.append
    before = model.weight.detach().clone()
    optim.update_params(model(torch.ones(1, 2)).sum() * float('nan'))
    assert heard == [[0]] and torch.equal(model.weight, before)
    assert model.weight.grad is None or not model.weight.grad.any()
    optim.update_params(model(torch.ones(1, 2)).sum())
    assert heard == [[0], None] and not torch.equal(model.weight, before)
