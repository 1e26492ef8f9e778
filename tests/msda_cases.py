"""Random multi-scale deformable attention inputs and a forward + backward runner, shared by
tests/test_ops_msda.py and the Triton interpreter check it runs in a subprocess."""
import torch

from occnet.ops import multi_scale_deformable_attn


def random_case(seed, bs=2, queries=300, heads=4, dims=16, points=4,
                shapes=((12, 20), (6, 10), (3, 5)), dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    value = torch.randn(bs, sum(h * w for h, w in shapes), heads, dims, generator=gen,
                        dtype=dtype)
    locations = torch.rand(bs, queries, heads, len(shapes), points, 2, generator=gen,
                           dtype=dtype) * 1.3 - 0.15
    weights = torch.rand(bs, queries, heads, len(shapes), points, generator=gen,
                         dtype=dtype).softmax(-1)
    return value, [tuple(s) for s in shapes], locations, weights


def outputs_and_grads(backend, value, shapes, locations, weights, seed=0):
    inputs = [t.clone().requires_grad_(True) for t in (value, locations, weights)]
    out = multi_scale_deformable_attn(inputs[0], shapes, inputs[1], inputs[2], backend=backend)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    out.backward(grad)
    return [out.detach()] + [t.grad for t in inputs]
