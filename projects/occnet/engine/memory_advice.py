"""A CUDA out-of-memory error ends the run with the options that cut memory, each with the
value it has in the run's config."""
import inspect
import traceback
from contextlib import contextmanager

import torch

from occnet.datasets.transforms import (LoadMultiViewImages, RandomScaleMultiViewImages,
                                       ResizeMultiViewImages)
from occnet.engine.amp import amp_mode

# pipeline transforms whose arguments set the network's input size, by type name
SIZE_ARGUMENTS = {cls.__name__: (cls, keys) for cls, keys in (
    (LoadMultiViewImages, ('decode_scale',)), (ResizeMultiViewImages, ('scale', 'size')),
    (RandomScaleMultiViewImages, ('scales',)))}


def _argument(step, cls, key):
    """Argument `key` of a pipeline step of transform `cls`: its value, or its default."""
    if key in step:
        return step[key]
    default = inspect.signature(cls.__init__).parameters[key].default
    return None if default is inspect.Parameter.empty else default


def input_size_settings(cfg, section):
    """[(key path, value, transform type), ...]: the arguments of the pipeline of
    cfg[section]'s dataset (the first one with a pipeline, through dataset wrappers) that set
    the network's input size, with their values in cfg (or their defaults)."""
    dataset, path = (cfg.get(section) or {}).get('dataset'), f'{section}.dataset'
    while dataset is not None and 'pipeline' not in dataset:
        dataset, path = dataset.get('dataset'), path + '.dataset'
    settings = []
    for i, step in enumerate((dataset or {}).get('pipeline') or []):
        type_name = str(step.get('type')).rpartition('.')[2]  # 'occnet.X' -> 'X'
        cls, keys = SIZE_ARGUMENTS.get(type_name, (None, ()))
        for key in keys:
            value = _argument(step, cls, key)
            if value is not None:
                settings.append((f'{path}.pipeline.{i}.{key}', value, type_name))
    return settings


def memory_advice(cfg, mode, error_line, batch_size_option=None, input_size_option=None):
    """The message a CUDA out-of-memory error ends the run with: the error, then each option
    that cuts memory with what it does and its value in this run.

    Args:
        cfg: the run's config; the options' current values are read from it.
        mode: 'train' or 'test' (tools/train.py, tools/test.py), or 'infer' (inference in
            tools/benchmark.py: --amp applies, activation checkpointing does not).
        error_line: the first line of the original error.
        batch_size_option, input_size_option: (option, current value) where the tool sets
            them itself (tools/benchmark.py's --batch-size and --img-size); by default the
            config's train_dataloader (test_dataloader unless training) batch_size and its
            pipeline's input-size arguments.
    Returns:
        str, several lines.
    """
    section = 'train_dataloader' if mode == 'train' else 'test_dataloader'
    options = []
    if mode != 'test':
        amp = amp_mode(cfg)
        options.append(('--amp', 'bf16 autocast of the forward passes; now '
                        + (f'on ({amp})' if amp else 'off (fp32)')))
    if mode == 'train':
        model = cfg.get('model') or {}
        current = ', '.join(f'{part}.with_cp={(model.get(part) or {}).get("with_cp", False)}'
                            for part in ('img_backbone', 'bev_encoder'))
        options.append(('--cfg-options model.img_backbone.with_cp=True '
                        'model.bev_encoder.with_cp=True',
                        f'activation checkpointing (about a third more backbone time); now '
                        f'{current}'))
    option, value = batch_size_option or (
        f'--cfg-options {section}.batch_size=N', (cfg.get(section) or {}).get('batch_size'))
    options.append((option, f'samples per GPU; now {value}'))
    if input_size_option is not None:
        option, value = input_size_option
        options.append((option, f'network input size; now {value}'))
    else:
        settings = input_size_settings(cfg, section)
        now = ', '.join(f'{path.rpartition("dataset.")[2]}={value} ({kind})'
                        for path, value, kind in settings)
        options.append((f'--cfg-options {settings[-1][0]}=<smaller>' if settings else
                        f'a ResizeMultiViewImages step in {section}.dataset.pipeline',
                        f'network input size; now {now or "as the image files"}'))
    lines = [f'error: CUDA ran out of memory in {mode}: {error_line}',
             'These options cut memory:']
    lines += [f'  {option}\n      {effect}' for option, effect in options]
    if mode == 'test':
        lines.append('(--amp and activation checkpointing apply to training only)')
    return '\n'.join(lines)


@contextmanager
def out_of_memory_advice(cfg, mode, batch_size_option=None, input_size_option=None):
    """Turn a CUDA out-of-memory error in the block into SystemExit(memory_advice(...)),
    after freeing what the failed step held: the locals of its finished frames, then CUDA's
    cached blocks (so whatever runs on the way out has memory). Arguments as memory_advice.
    """
    try:
        yield
    except torch.cuda.OutOfMemoryError as err:
        error_line = (str(err).strip().splitlines() or ['CUDA out of memory'])[0]
        traceback.clear_frames(err.__traceback__)
        advice = memory_advice(cfg, mode, error_line, batch_size_option, input_size_option)
    else:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    raise SystemExit(advice)
