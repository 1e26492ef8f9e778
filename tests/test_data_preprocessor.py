"""OccDataPreprocessor: per-sample non-blocking copies, the same images as stack-then-normalise."""
import torch
import torch.nn.functional as F

from occnet.models.data_preprocessor import OccDataPreprocessor

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)


def uint8_batch(batch_size=2, height=30, width=50):
    gen = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (2, 3, 3, height, width), generator=gen, dtype=torch.uint8)
            for _ in range(batch_size)]
    samples = [dict(token=f't{b}', voxel_semantics=torch.full((4, 4, 2), b, dtype=torch.uint8))
               for b in range(batch_size)]
    return dict(inputs=dict(imgs=imgs), data_samples=samples)


def test_images_are_bitwise_those_of_stack_then_normalise():
    batch = uint8_batch()
    out = OccDataPreprocessor(pad_size_divisor=32)(batch)
    # the previous implementation: one host stack, then normalise and pad
    want = (torch.stack(batch['inputs']['imgs']).float() - MEAN) / STD
    want = F.pad(want, (0, 64 - 50, 0, 32 - 30))
    assert out['inputs']['imgs'].shape == (2, 2, 3, 3, 32, 64)
    assert torch.equal(out['inputs']['imgs'], want)
    assert float(out['inputs']['imgs'][0, 0, 0, 0, 31, 63]) == 0.0  # padding
    assert torch.equal(out['data_samples'][1]['voxel_semantics'],
                       batch['data_samples'][1]['voxel_semantics'])


def test_every_copy_to_the_device_is_non_blocking(monkeypatch):
    calls = []
    real_to = torch.Tensor.to

    def recording_to(self, *args, **kwargs):
        calls.append((tuple(self.shape), kwargs.get('non_blocking', False)))
        return real_to(self, *args, **kwargs)
    monkeypatch.setattr(torch.Tensor, 'to', recording_to)
    OccDataPreprocessor()(uint8_batch())
    images = [c for c in calls if c[0] == (2, 3, 3, 30, 50)]
    labels = [c for c in calls if c[0] == (4, 4, 2)]
    assert len(images) == 2 and len(labels) == 2  # one copy per sample, before the stack
    assert all(non_blocking for _, non_blocking in images + labels)
    calls.clear()
    OccDataPreprocessor(non_blocking=False)(uint8_batch())
    assert calls and not any(non_blocking for _, non_blocking in calls)
