"""A CUDA out-of-memory error ends train / test / benchmark runs with the options that cut
memory and their values in the run (CPU: the error is raised by hand)."""
import os
import runpy
import sys
import weakref

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from occnet.engine import launch
from occnet.engine.amp import configure_amp
from occnet.engine.memory_advice import out_of_memory_advice

from conftest import REPO_ROOT

DEMO = os.path.join(REPO_ROOT, 'configs', 'bevformer_occ',
                    'bevformer-occ-demo_r18-fpn_1xb1-3e_openscene-synthetic.py')
TINY = os.path.join(REPO_ROOT, 'configs', 'bevformer_occ',
                    'bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py')
OOM = ('CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of '
       '79.19 GiB of which 1.06 GiB is free.\nIncluding non-PyTorch memory, this process ...')
FIRST_LINE = OOM.splitlines()[0]


def advice(cfg, mode, **kwargs):
    """The SystemExit message of an out-of-memory error raised in the context manager."""
    with pytest.raises(SystemExit) as exit_info:
        with out_of_memory_advice(cfg, mode, **kwargs):
            raise torch.cuda.OutOfMemoryError(OOM)
    return str(exit_info.value)


def test_training_advice_names_each_option_with_its_value():
    cfg = Config.fromfile(DEMO)
    configure_amp(cfg, 'bf16', 'cpu')
    cfg.model.img_backbone.with_cp = True
    cfg.train_dataloader.batch_size = 3
    message = advice(cfg, 'train')
    assert message.startswith(f'error: CUDA ran out of memory in train: {FIRST_LINE}\n')
    assert 'Including non-PyTorch memory' not in message
    lines = message.splitlines()
    assert lines[lines.index('  --amp') + 1].endswith('now on (bf16)')
    cp = lines.index('  --cfg-options model.img_backbone.with_cp=True '
                     'model.bev_encoder.with_cp=True')
    assert lines[cp + 1].endswith('now img_backbone.with_cp=True, bev_encoder.with_cp=False')
    batch = lines.index('  --cfg-options train_dataloader.batch_size=N')
    assert lines[batch + 1].endswith('samples per GPU; now 3')
    # the demo decodes full size (decode_scale's default 1), then resizes by 0.8
    size = lines.index('  --cfg-options train_dataloader.dataset.pipeline.1.scale=<smaller>')
    assert lines[size + 1].endswith('now pipeline.0.decode_scale=1 (LoadMultiViewImages), '
                                    'pipeline.1.scale=0.8 (ResizeMultiViewImages)')


def test_fp32_baseline_and_test_mode_advice():
    cfg = Config.fromfile(TINY)
    message = advice(cfg, 'train')
    assert 'now off (fp32)' in message
    assert 'now img_backbone.with_cp=False, bev_encoder.with_cp=False' in message
    assert 'train_dataloader.dataset.pipeline.0.decode_scale=<smaller>' in message
    assert 'now pipeline.0.decode_scale=0.5 (LoadMultiViewImages)' in message
    message = advice(cfg, 'test')
    assert message.startswith(f'error: CUDA ran out of memory in test: {FIRST_LINE}')
    assert '--cfg-options test_dataloader.batch_size=N' in message
    assert 'test_dataloader.dataset.pipeline.0.decode_scale=<smaller>' in message
    assert '  --amp' not in message and 'with_cp=True' not in message  # training only


def test_other_errors_pass_and_the_cache_is_emptied_after_the_step_is_freed(monkeypatch):
    cfg = Config.fromfile(TINY)
    with pytest.raises(RuntimeError, match='not memory'):
        with out_of_memory_advice(cfg, 'train'):
            raise RuntimeError('not memory')
    with out_of_memory_advice(cfg, 'train'):
        pass
    held, alive_at_empty_cache = [], []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'empty_cache',
                        lambda: alive_at_empty_cache.append(held[0]() is not None))

    def failing_step():
        activations = torch.ones(4)
        held.append(weakref.ref(activations))
        raise torch.cuda.OutOfMemoryError(OOM)
    with pytest.raises(SystemExit):
        with out_of_memory_advice(cfg, 'train'):
            failing_step()
    # the failed step's tensors were released before the cache was emptied
    assert alive_at_empty_cache == [False]


def test_launch_run_ends_with_the_advice(tmp_path, monkeypatch):
    class OutOfMemoryRunner:
        def train(self):
            raise torch.cuda.OutOfMemoryError(OOM)
    monkeypatch.setattr(Runner, 'from_cfg', classmethod(lambda cls, cfg: OutOfMemoryRunner()))
    roots = {f'{split}_dataloader.dataset.data_root': str(tmp_path)
             for split in ('train', 'val', 'test')}
    cfg = launch.load_config(DEMO, dict(roots, **{'train_dataloader.batch_size': 2}),
                             work_dir=str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        launch.run(cfg, 'train')
    message = str(exit_info.value)
    assert message.startswith(f'error: CUDA ran out of memory in train: {FIRST_LINE}')
    assert 'samples per GPU; now 2' in message and 'now off (fp32)' in message


def test_benchmark_loop_ends_with_its_own_options(monkeypatch):
    from occnet.models.detectors.bevformer_occ import BEVFormerOcc

    def out_of_memory(self, imgs, data_samples):
        raise torch.cuda.OutOfMemoryError(OOM)
    monkeypatch.setattr(BEVFormerOcc, 'loss', out_of_memory)
    monkeypatch.setattr(sys, 'argv', [
        'benchmark.py', DEMO, '--iters', '1', '--warmup', '0', '--img-size', '64', '32',
        '--batch-size', '2', '--device', 'cpu', '--amp', 'bf16', '--cfg-options',
        'model.bev_encoder.bev_h=25', 'model.bev_encoder.bev_w=25', 'model.occ_head.bev_h=25',
        'model.occ_head.bev_w=25'])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(os.path.join(REPO_ROOT, 'tools', 'benchmark.py'), run_name='__main__')
    lines = str(exit_info.value).splitlines()
    assert lines[0] == f'error: CUDA ran out of memory in train: {FIRST_LINE}'
    assert lines[lines.index('  --batch-size B') + 1].endswith('now 2')
    assert lines[lines.index('  --img-size W H') + 1].endswith('now 64 32')
    assert lines[lines.index('  --amp') + 1].endswith('now on (bf16)')
