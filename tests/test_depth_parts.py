"""The depth parts checked by hand: a projection split into intrinsics and extrinsics (also
mirrored), depth bins and their targets, the depth loss worked by hand, AbsRel and delta,
and the camera-aware depth network (camera input changes the output, every pixel gets
gradient, geometry fp32 under autocast)."""
import math

import numpy as np
import pytest
import torch

from occnet.evaluation.depth_metrics import depth_error_sums, depth_metrics
from occnet.models.losses.depth_loss import DepthBinLoss
from occnet.models.view_transforms import (CameraAwareDepthNet, camera_parameters,
                                           split_projection)
from occnet.models.view_transforms.depth_bins import bin_centres, depth_targets, expected_depth

K = torch.tensor([[800.0, 0.5, 480], [0, 790, 270], [0, 0, 1]], dtype=torch.float64)
K4 = np.array([[100.0, 0, 160, 0], [0, 100, 90, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
LIDAR2CAM = np.array([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
AXES = torch.tensor([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=torch.float64)  # front cam


def projection(yaw, translation, mirror=(1, 1)):
    rotation = torch.tensor([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw),
                             math.cos(yaw), 0], [0, 0, 1.0]], dtype=torch.float64)
    rotation = AXES @ rotation @ torch.diag(torch.tensor([*mirror, 1.0], dtype=torch.float64))
    matrix = torch.eye(4, dtype=torch.float64)
    matrix[:3, :3] = K @ rotation
    matrix[:3, 3] = K @ torch.tensor(translation, dtype=torch.float64)
    return matrix, rotation


@pytest.mark.parametrize('mirror', [(1, 1), (-1, -1), (1, -1)])
def test_split_projection_recovers_intrinsics_and_extrinsics(mirror):
    matrix, rotation = projection(0.3, [0.2, -1.5, 0.7], mirror)
    intrinsics, got_rotation, translation = split_projection(matrix[None, None])
    torch.testing.assert_close(intrinsics[0, 0], K)
    torch.testing.assert_close(got_rotation[0, 0], rotation)
    torch.testing.assert_close(translation[0, 0],
                               torch.tensor([0.2, -1.5, 0.7], dtype=torch.float64))
    assert torch.det(got_rotation[0, 0]).item() == pytest.approx(mirror[0] * mirror[1])


def test_camera_parameters_stay_fp32_under_autocast():
    matrix, _ = projection(0.0, [0.0, 0.0, 0.0])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        params = camera_parameters(matrix.float()[None], (540, 960))
    assert params.dtype == torch.float32 and params.shape == (1, 16)
    # fx / W, fy / H, cx / W, cy / H, then the rotation rows, then the translation
    torch.testing.assert_close(params[0, :4], torch.tensor([800 / 960, 790 / 540, 0.5, 0.5]))
    torch.testing.assert_close(params[0, 4:13], AXES.float().flatten())


def test_bins_targets_and_expected_depth():
    centres = bin_centres((1.0, 45.0, 0.5))
    assert len(centres) == 88 and centres[0] == 1.25 and centres[-1] == 44.75
    depth = torch.tensor([[0.0, 1.0, 1.49, 10.3, 45.0]])
    one_hot, valid = depth_targets(depth, (1.0, 45.0, 0.5))
    assert valid.tolist() == [[False, True, True, True, False]]
    assert one_hot.argmax(-1)[0, 1:4].tolist() == [0, 0, 18]  # 10.3 m is in [10, 10.5)
    assert one_hot[0, 0].sum() == 0 and one_hot[0, 4].sum() == 0
    probs = torch.zeros(1, 4, 1, 2)
    probs[0, 1, 0, 0] = 1.0  # all on bin 1 (centre 3 m of 2-m bins from 0)
    probs[0, :, 0, 1] = 0.25  # uniform: mean of the centres 1, 3, 5, 7
    assert expected_depth(probs, (0.0, 8.0, 2.0)).tolist() == [[[3.0, 4.0]]]


def test_depth_loss_by_hand():
    # 2 bins; one cell with a return in bin 1, one without (ignored)
    probs = torch.tensor([[0.2, 0.9], [0.8, 0.1]]).view(1, 2, 1, 2)  # (B, D, H, W)
    depth_maps = torch.tensor([[[1.5, 0.0]]])  # bins [0, 1), [1, 2)
    loss = DepthBinLoss((0.0, 2.0, 1.0), loss_weight=2.0)(probs.log(), depth_maps)
    expected = -(math.log(1 - 0.2) + math.log(0.8))  # target (0, 1) for probs (0.2, 0.8)
    assert loss.item() == pytest.approx(2.0 * expected, rel=1e-5)
    assert DepthBinLoss((0.0, 2.0, 1.0))(probs.log(), torch.zeros(1, 1, 2)).item() == 0.0


def test_depth_loss_keeps_its_gradient_on_a_confidently_wrong_cell():
    """Softmax saturated on the wrong bin (logit margin 30): BCE on clamped probabilities
    would give no gradient; the target logit must still be pushed up, by about 1."""
    logits = torch.tensor([30.0, 0.0, 0.0]).view(1, 3, 1, 1).requires_grad_(True)
    DepthBinLoss((0.0, 3.0, 1.0), loss_weight=1.0)(logits, torch.tensor([[[1.5]]])).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 1, 0, 0].item() < -0.9  # the target bin's logit goes up
    assert logits.grad[0, 0, 0, 0].item() > 0.9  # the wrong bin's goes down


def test_abs_rel_and_delta_by_hand():
    sums = depth_error_sums(np.array([10.0, 12.0, 30.0, 5.0]), np.array([10.0, 10.0, 20.0, 0]))
    assert sums['count'] == 3  # the cell without a return is not counted
    metrics = depth_metrics(sums)
    assert metrics['abs_rel'] == pytest.approx((0 + 0.2 + 0.5) / 3)
    assert metrics['delta1'] == pytest.approx(200 / 3)  # 1.0 and 1.2 pass, 1.5 fails
    assert math.isnan(depth_metrics(depth_error_sums(np.ones(2), np.zeros(2)))['abs_rel'])


def test_depth_net_is_camera_aware_and_every_pixel_gets_gradient():
    torch.manual_seed(0)
    net = CameraAwareDepthNet(in_channels=8, mid_channels=16, context_channels=6, num_bins=5)
    feats = torch.randn(4, 8, 5, 7, requires_grad=True)
    cams = torch.stack([camera_parameters(projection(yaw, [0, 0, 0])[0].float(), (80, 112))
                        for yaw in (0.0, 1.5, 3.0, -1.5)])
    depth, context = net(feats, cams)
    assert depth.shape == (4, 5, 5, 7) and context.shape == (4, 6, 5, 7)
    (depth.softmax(1)[:, 0].sum() + context.sum()).backward()
    assert (feats.grad.abs().sum(1) > 0).all()  # every input pixel of every camera
    net.eval()
    same_pixels = feats.detach()[:1].expand(4, -1, -1, -1)
    depth, context = net(same_pixels, cams)
    assert not torch.allclose(depth[0], depth[1]) and not torch.allclose(context[0], context[2])


def test_depth_net_with_open_camera_gates_is_a_plain_depth_net():
    """Gates held open (sigmoid 1 whatever the camera): the camera-aware net reduces to the
    plain one, reduce -> residual blocks -> 1x1 depth, reduce -> 1x1 context."""
    torch.manual_seed(0)
    net = CameraAwareDepthNet(in_channels=8, mid_channels=16, context_channels=6,
                              num_bins=5).eval()
    with torch.no_grad():
        for gate in (net.depth_gate, net.context_gate):
            gate.excite[-1].weight.zero_()
            gate.excite[-1].bias.fill_(40.0)  # sigmoid(40) == 1 in fp32
    feats = torch.randn(2, 8, 5, 7)
    cams = torch.stack([camera_parameters(projection(yaw, [0, 0, 0])[0].float(), (80, 112))
                        for yaw in (0.0, 1.5)])
    with torch.no_grad():
        depth, context = net(feats, cams)
        reduced = net.reduce(feats)
        assert torch.equal(depth, net.depth_out(net.depth_blocks(reduced)))
        assert torch.equal(context, net.context_out(reduced))


def test_frustum_points_project_back_to_their_pixel_and_depth():
    from occnet.models.view_transforms.frustum import frustum_points
    matrices = torch.stack([projection(0.0, [0.1, 0.2, 0.3])[0],
                            projection(2.0, [0.0, -1.0, 0.5], mirror=(-1, 1))[0]])[None]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        points = frustum_points(matrices.float(), (3, 4), 16, (1.0, 5.0, 2.0))
    assert points.shape == (1, 2, 2, 3, 4, 3) and points.dtype == torch.float32
    homogeneous = torch.cat([points.double(), torch.ones(*points.shape[:-1], 1,
                                                         dtype=torch.float64)], -1)
    pixels = torch.einsum('bnij,bndhwj->bndhwi', matrices, homogeneous)
    depth = pixels[..., 2]
    # bin centres 2 and 4 m; feature pixel (i=2, j=1) looks through image pixel (24, 40)
    torch.testing.assert_close(depth[0, 1, :, 2, 1], torch.tensor([2.0, 4.0],
                                                                   dtype=torch.float64))
    torch.testing.assert_close(pixels[0, 1, 1, 2, 1, 0] / depth[0, 1, 1, 2, 1],
                               torch.tensor(24.0, dtype=torch.float64), rtol=0, atol=1e-3)
    torch.testing.assert_close(pixels[0, 0, 0, 2, 1, 1] / depth[0, 0, 0, 2, 1],
                               torch.tensor(40.0, dtype=torch.float64), rtol=0, atol=1e-3)


class FixedDepth(torch.nn.Module):
    """A stand-in depth net: all probability in one bin, context all ones."""

    def __init__(self, num_bins, hot_bin, channels=3):
        super().__init__()
        self.num_bins, self.hot_bin, self.channels = num_bins, hot_bin, channels

    def forward(self, feats, camera):
        logits = torch.full((feats.shape[0], self.num_bins, *feats.shape[2:]), -1e4)
        logits[:, self.hot_bin] = 0.0
        return logits + 0 * feats.sum(), torch.ones(feats.shape[0], self.channels,
                                                    *feats.shape[2:]) + 0 * feats.sum()


def test_lss_puts_a_front_camera_ray_at_its_depth_in_the_right_bev_row():
    """A camera looking along lidar +x (fx = fy = 100, centre (160, 90)); every pixel's
    depth all in the bin centred at 10 m. Feature rows i = 3..7 (image rows 56..120) see
    heights inside [-4, 4) m at 10 m, so 5 x 20 pixels land in BEV row x = 10 m (cell 60 of
    100 over [-50, 50]); each adds its context (ones)."""
    from occnet.models.view_transforms.lss import LSSViewTransformer
    lss = LSSViewTransformer(dict(type='CameraAwareDepthNet', in_channels=4, mid_channels=4,
                                  context_channels=3, num_bins=22),
                             depth_range=(1.0, 45.0, 2.0), bev_h=100, bev_w=100)
    lss.depth_net = FixedDepth(22, hot_bin=4)  # centre 1 + 4.5 * 2 = 10 m
    front = torch.tensor(K4 @ LIDAR2CAM, dtype=torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        bev, depth_logits = lss([torch.zeros(1, 1, 4, 12, 20)], front[None, None],
                                torch.tensor([[180, 320]]), (192, 320))
    assert bev.shape == (1, 3, 100, 100) and depth_logits.shape == (1, 22, 12, 20)
    assert depth_logits.dtype == torch.float32  # the geometry and the depth stay fp32
    bev = bev.float()
    rows = bev[0, 0].sum(1)
    assert rows[60].item() == pytest.approx(100.0) and rows.sum().item() == pytest.approx(100)
    # the pixel columns u = 8 .. 312 span y = -(u - 160) / 10 = +15.2 .. -15.2 m
    cols = torch.nonzero(bev[0, 0, 60]).flatten()
    assert cols.min().item() == 50 - 16 and cols.max().item() == 50 + 15


class GivenDepth(torch.nn.Module):
    """A stand-in depth net returning the given logits (B*N, D, H, W) and context."""

    def __init__(self, logits, context):
        super().__init__()
        self.num_bins, self.logits, self.context = logits.shape[1], logits, context

    def forward(self, feats, camera):
        return self.logits + 0 * feats.sum(), self.context


def lift_front_camera(logits, context, pooling):
    """The front camera of the test above (fx = fy = 100) lifting the given depth logits
    (1, 22, 12, 20) and context (1, C, 12, 20) into a 100x100 BEV: (1, C, 100, 100)."""
    from occnet.models.view_transforms.lss import LSSViewTransformer
    lss = LSSViewTransformer(dict(type='CameraAwareDepthNet', in_channels=4, mid_channels=4,
                                  context_channels=context.shape[1], num_bins=22),
                             depth_range=(1.0, 45.0, 2.0), bev_h=100, bev_w=100,
                             pooling=pooling)
    lss.depth_net = GivenDepth(logits, context)
    front = torch.tensor(K4 @ LIDAR2CAM, dtype=torch.float32)
    bev, _ = lss([torch.zeros(1, 1, 4, 12, 20)], front[None, None],
                 torch.tensor([[180, 320]]), (192, 320))
    return bev


def test_mass_mean_pooling_divides_each_cell_by_one_plus_its_mass():
    """'mass_mean' must be S / (1 + M), S the summed lift of the context and M the summed
    lift of a context of ones (each cell's probability mass), values and gradients: random
    depth logits and context, so any other normaliser (a channel of S, its mean, a detached
    M) gives other numbers."""
    torch.manual_seed(0)
    logits = torch.randn(1, 22, 12, 20, requires_grad=True)
    context = torch.randn(1, 3, 12, 20, requires_grad=True)
    weights = torch.randn(1, 3, 100, 100)  # a loss that weighs every cell and channel
    got = lift_front_camera(logits, context, 'mass_mean')
    (got * weights).sum().backward()
    got_grads = logits.grad.clone(), context.grad.clone()
    logits.grad = context.grad = None
    summed = lift_front_camera(logits, context, 'sum')
    mass = lift_front_camera(logits, torch.ones(1, 1, 12, 20), 'sum')
    want = summed / (1 + mass)
    (want * weights).sum().backward()
    assert mass.max().item() > 1  # cells near the camera take several pixels' mass
    torch.testing.assert_close(got, want)
    assert (got[(mass == 0).expand_as(got)] == 0).all()
    torch.testing.assert_close(got_grads[0], logits.grad)  # through S and through M
    torch.testing.assert_close(got_grads[1], context.grad)
    assert logits.grad.abs().sum() > 0
    from occnet.models.view_transforms.lss import LSSViewTransformer
    with pytest.raises(ValueError, match="pooling must be 'sum' or 'mass_mean'"):
        LSSViewTransformer(dict(type='CameraAwareDepthNet', in_channels=4, mid_channels=4,
                                context_channels=3, num_bins=22), depth_range=(1.0, 45.0, 2.0),
                           bev_h=100, bev_w=100, pooling='mean')


def test_padding_lifts_nothing():
    """A camera whose image is 100 rows, padded to 192: only feature rows whose centre is
    inside the image (i = 0..5 at stride 16) may lift; here the ray at 10 m of every row
    lies within [-4, 4) m in height only for rows 3..7, so rows 3..5 = 3 x 20 pixels."""
    from occnet.models.view_transforms.lss import LSSViewTransformer
    lss = LSSViewTransformer(dict(type='CameraAwareDepthNet', in_channels=4, mid_channels=4,
                                  context_channels=3, num_bins=22),
                             depth_range=(1.0, 45.0, 2.0), bev_h=100, bev_w=100)
    lss.depth_net = FixedDepth(22, hot_bin=4)
    front = torch.tensor(K4 @ LIDAR2CAM, dtype=torch.float32)
    bev, _ = lss([torch.zeros(1, 1, 4, 12, 20)], front[None, None], torch.tensor([[100, 320]]),
                 (192, 320))
    assert bev[0, 0].sum().item() == pytest.approx(60.0)
    inside = LSSViewTransformer.inside_image(torch.tensor([[100, 320], [192, 40]]), (12, 20), 16)
    assert inside[0].sum(1).tolist() == [20] * 6 + [0] * 6
    assert inside[1].sum(0).tolist() == [12] * 2 + [0] * 18


@pytest.mark.parametrize('pooling', ['sum', 'mass_mean'])
def test_every_feature_pixel_and_the_camera_path_get_gradient_through_lss(pooling):
    """8 cameras of the synthetic rig at 256 x 160: every feature pixel (all inside the
    image) and every parameter of the depth net, the camera MLPs included, get gradient from
    the BEV."""
    from occnet.datasets.synthetic.rig import make_rig
    from occnet.descriptions import OPENSCENE
    from occnet.geometry import lidar2img_matrix
    from occnet.models.view_transforms.lss import LSSViewTransformer
    torch.manual_seed(0)
    rig = make_rig(np.random.default_rng(0), (256, 160))
    lidar2img = torch.tensor(np.stack([lidar2img_matrix(rig[c]) for c in OPENSCENE.camera_names]),
                             dtype=torch.float32)[None]
    lss = LSSViewTransformer(dict(type='CameraAwareDepthNet', in_channels=8, mid_channels=8,
                                  context_channels=4, num_bins=22),
                             depth_range=(1.0, 45.0, 2.0), bev_h=50, bev_w=50,
                             pooling=pooling)
    feats = torch.randn(1, 8, 8, 10, 16, requires_grad=True)
    bev, _ = lss([feats], lidar2img, torch.tensor([[160, 256]]), (160, 256))
    bev.square().sum().backward()
    assert (feats.grad.abs().sum(2) > 0).all()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in lss.depth_net.parameters())
