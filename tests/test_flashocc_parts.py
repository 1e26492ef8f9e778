"""FlashOcc's parts: the BEV ResNet-FPN keeps the BEV size and lets every cell reach the
output; the channel-to-height head puts a BEV cell's column at its own voxels (checked by
the gradient of one voxel's logit) and starts at the class prior in every voxel of the
column."""
import pytest
import torch

from occnet.models.bev_encoders.bev_resnet import BEVResNetFPN
from occnet.models.occ_heads.channel_to_height_head import ChannelToHeightHead


def test_bev_resnet_fpn_keeps_the_size_and_every_cell_gets_gradient():
    torch.manual_seed(0)
    net = BEVResNetFPN(in_channels=6, stage_channels=(8, 16), out_channels=5)
    bev = torch.randn(2, 6, 12, 16, requires_grad=True)
    out = net(bev)
    assert out.shape == (2, 5, 12, 16)
    out.square().sum().backward()
    assert (bev.grad.abs().sum(1) > 0).all()
    with pytest.raises(ValueError, match='multiple of 4'):
        net(torch.randn(1, 6, 10, 16))


def test_channel_to_height_puts_a_cells_column_at_its_voxels():
    torch.manual_seed(0)
    head = ChannelToHeightHead(in_channels=4, bev_h=6, bev_w=5, grid_shape=(12, 10, 3),
                               hidden_dims=8)
    bev = torch.randn(1, 30, 4, requires_grad=True)  # query index = ix * bev_w + iy
    logits = head(bev)
    assert logits.shape == (1, 12, 12, 10, 3)  # (B, K, X, Y, Z), 2 x 2 voxels per cell
    # the Z x s x s voxels of a column share a bias but not their weights: they differ
    column = logits[0, :, 4:6, 6:8, :].reshape(12, -1).t()  # (12 voxels, K)
    assert torch.cdist(column, column).fill_diagonal_(1.0).min() > 1e-4
    logits[0, 4, 5, 7, 2].backward()  # voxel x 5, y 7 lies in BEV cell (2, 3)
    reached = bev.grad[0].abs().sum(-1).view(6, 5) > 0
    expected = torch.zeros(6, 5, dtype=torch.bool)
    expected[1:4, 2:5] = True  # the 3x3 conv's neighbourhood of (2, 3)
    assert torch.equal(reached, expected)


def test_class_prior_fills_every_voxel_of_the_column():
    frequencies = [0.01] * 11 + [0.89]
    head = ChannelToHeightHead(in_channels=4, bev_h=2, bev_w=2, grid_shape=(4, 4, 3),
                               hidden_dims=8, class_frequencies=frequencies)
    bias = head.predictor[-1].bias.view(3, 4, 12)  # (Z, s * s, K)
    assert torch.equal(bias.argmax(-1), torch.full((3, 4), 11))
    assert torch.allclose(bias[2, 3], bias[0, 0])


def test_benchmark_feeds_depth_maps_of_the_pipelines_stride():
    """tools/benchmark.py trains depth-supervised configs on random depth maps at the
    train pipeline's DepthMapsFromPoints stride, on the padded image (144 -> 160 rows)."""
    import importlib
    import os
    import sys

    from mmengine.config import Config

    from conftest import REPO_ROOT
    sys.path.insert(0, os.path.join(REPO_ROOT, 'tools'))
    benchmark = importlib.import_module('benchmark')
    cfg = Config.fromfile(os.path.join(
        REPO_ROOT, 'configs/flashocc/flashocc-demo_r18-fpn_1xb1-3e_openscene-synthetic.py'))
    assert benchmark.depth_stride(cfg) == 8
    batch = benchmark.synthetic_batch(1, 1, (256, 144), depth_stride=8)
    depth = batch['data_samples'][0]['depth_maps']
    assert depth.shape == (8, 20, 32) and 0.2 < (depth > 0).float().mean() < 0.5
    # an Occ3D config gets its dataset's 6 cameras, 18 labels and grid
    occ3d = benchmark.synthetic_batch(1, 2, (256, 144), depth_stride=8, dataset='occ3d_nuscenes')
    sample = occ3d['data_samples'][0]
    assert occ3d['inputs']['imgs'][0].shape == (2, 6, 3, 144, 256)
    assert sample['lidar2img'].shape == (2, 6, 4, 4) and sample['depth_maps'].shape[0] == 6
    assert sample['voxel_semantics'].shape == (200, 200, 16)
    assert int(sample['voxel_semantics'].max()) <= 17
