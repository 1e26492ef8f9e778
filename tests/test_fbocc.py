"""The forward-backward model (FB-OCC style): the depth weight of an anchor read by hand,
depth-aware attention equal to plain attention at weight 1 and scaled per anchor (point p
belongs to anchor p % D), the encoder reducing to BEVFormer's when the forward BEV is zero,
the depth net learning from the occupancy side through the attention, fp32 geometry."""
import pytest
import torch

from occnet.models.bev_encoders import fbocc_encoder
from occnet.models.bev_encoders.depth_aware_attention import (anchor_depth_weights,
                                                              anchor_depth_weights_reference)
from occnet.models.bev_encoders.encoder import BEVFormerEncoder
from occnet.models.bev_encoders.fbocc_encoder import FBOccEncoder
from occnet.models.bev_encoders.spatial_cross_attention import (SpatialCrossAttention,
                                                                select_camera_queries)

DEPTH_RANGE = (1.0, 9.0, 2.0)  # 4 bins: [1, 3) [3, 5) [5, 7) [7, 9)


def test_anchor_depth_weight_by_hand():
    probs = torch.zeros(1, 4, 2, 4)  # (B*N, D, H, W)
    probs[0, 2, 1, 3] = 0.8  # bin [5, 7) at row 1, column 3
    probs[0, 2, 1, 2] = 0.4
    probs[0, 0, 0, 0] = 0.6  # bin [1, 3) at row 0, column 0
    probs[0, 3, 0, 0] = 0.3  # bin [7, 9) at row 0, column 0
    centre = lambda row, col: [(col + 0.5) / 4, (row + 0.5) / 2]  # noqa: E731
    ref = torch.tensor([[[centre(1, 3)], [centre(1, 2.5)], [centre(1, 3)], [centre(0, 0)],
                         [centre(0, 0)], [centre(1, 3)], [[1.5, 0.5]]]])  # (1, 7, 1, 2)
    depth = torch.tensor([[[6.0], [5.0], [4.9], [0.5], [100.0], [8.0], [6.0]]])
    probs.requires_grad_(True)
    weight = anchor_depth_weights(probs, ref, depth, DEPTH_RANGE)
    expected = [0.8,  # at the cell's centre, in its bin
                0.6,  # halfway between columns 2 and 3: (0.4 + 0.8) / 2
                0.0,  # 4.9 m lies in bin [3, 5), which holds nothing there
                0.6,  # 0.5 m clamps to the first bin (FB-OCC clamps, it does not drop)
                0.3,  # 100 m clamps to the last bin (not dropped)
                0.0,  # 8 m: bin [7, 9), empty
                0.0]  # outside the map: zero padding
    assert weight.dtype == torch.float32
    assert torch.allclose(weight[0, :, 0], torch.tensor(expected))
    weight[0, 1, 0].backward()  # the halfway point reads columns 2 and 3 of bin 2, half each
    grad = torch.zeros(1, 4, 2, 4)
    grad[0, 2, 1, 2] = grad[0, 2, 1, 3] = 0.5
    assert torch.allclose(probs.grad, grad)


def test_relative_depth_weight_by_hand():
    """relative=True divides each pixel's distribution by its most probable bin's
    probability: 1 at the predicted depth, a flat distribution gives 1 everywhere, the
    padding (all bins 0) stays 0."""
    probs = torch.zeros(1, 4, 2, 4)
    probs[0, 0, 0, 0], probs[0, 3, 0, 0] = 0.6, 0.3  # row 0, column 0: mode in bin [1, 3)
    probs[0, :, 0, 1] = 0.25  # row 0, column 1: flat
    centre = lambda row, col: [(col + 0.5) / 4, (row + 0.5) / 2]  # noqa: E731
    ref = torch.tensor([[[centre(0, 0)], [centre(0, 0)], [centre(0, 0)], [centre(0, 1)],
                         [centre(0, 1)], [centre(1, 3)]]])  # (1, 6, 1, 2)
    depth = torch.tensor([[[2.0], [8.0], [4.0], [2.0], [8.0], [6.0]]])
    probs.requires_grad_(True)
    weight = anchor_depth_weights(probs, ref, depth, DEPTH_RANGE, relative=True)
    assert torch.allclose(weight[0, :, 0], torch.tensor([1.0, 0.5, 0.0, 1.0, 1.0, 0.0]))
    assert torch.equal(weight[0, 3:5, 0], torch.ones(2))  # exactly 1 for a flat pixel
    weight[0, 1, 0].backward()  # 0.3 / 0.6: d/dp3 = 1 / 0.6, d/dp0 = -0.3 / 0.6 ** 2
    grad = torch.zeros(1, 4, 2, 4)
    grad[0, 3, 0, 0], grad[0, 0, 0, 0] = 1 / 0.6, -0.3 / 0.36
    assert torch.allclose(probs.grad, grad)


@pytest.mark.parametrize('relative', [False, True])
def test_depth_weights_match_the_four_gather_reference(relative):
    """The trilinear grid_sample read equals FB-OCC's four bilinear gathers, values and
    gradients, with anchors off the map, far behind it and outside the depth range."""
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 6, 7, dtype=torch.float64)
    ref = torch.rand(3, 40, 4, 2) * 1.6 - 0.3  # partly outside [0, 1]
    ref[0, :3] = torch.tensor([-50.0, 80.0])  # far off: behind a camera
    depth = torch.rand(3, 40, 4) * 14 - 2  # bins of [1, 11): below, inside and above
    results = []
    for read in (anchor_depth_weights, anchor_depth_weights_reference):
        probs = logits.softmax(1).float().requires_grad_(True)
        weight = read(probs, ref, depth, (1.0, 11.0, 2.0), relative=relative)
        (weight * torch.linspace(-1, 2, weight.numel()).view_as(weight)).sum().backward()
        results.append((weight.detach(), probs.grad))
    (weight, grad), (expected_weight, expected_grad) = results
    assert expected_weight[0, :3].abs().max() == 0 and expected_weight.max() > 0.1
    assert torch.allclose(weight, expected_weight, atol=1e-6)
    assert torch.allclose(grad, expected_grad, atol=1e-5)


def one_camera_attention(num_points=6, num_anchors=3):
    """An SCA over one camera that sees every one of 5 queries; constant image features, so
    each query's output is value_proj(c) x the sum of its attention weights."""
    torch.manual_seed(0)
    sca = SpatialCrossAttention(embed_dims=8, num_heads=2, num_levels=1, num_points=num_points,
                                num_anchors=num_anchors, dropout=0.0)
    ref = torch.full((1, 1, 5, num_anchors, 2), 0.5)  # every anchor at the image centre
    cams = select_camera_queries(ref, torch.ones(1, 1, 5, num_anchors, dtype=torch.bool),
                                 depth=torch.full((1, 1, 5, num_anchors), 4.0))
    query = torch.randn(1, 5, 8)
    img_feats = torch.ones(1, 1, 6 * 8, 8)  # (B, N, h*w, C), one 6x8 level
    return sca, query, img_feats, [(6, 8)], cams


def test_depth_weight_one_is_plain_attention_exactly():
    sca, query, img_feats, shapes, cams = one_camera_attention()
    assert cams.depth.shape == (1, 5, 3) and cams.depth_weight is None
    plain = sca(query, None, img_feats, shapes, cams)
    ones = sca(query, None, img_feats, shapes, cams._replace(depth_weight=torch.ones(1, 5, 3)))
    assert torch.equal(plain, ones)


def test_depth_weight_scales_the_points_of_its_anchor():
    sca, query, img_feats, shapes, cams = one_camera_attention()
    with torch.no_grad():  # all attention on points 0 and 3, which belong to anchor 0
        sca.attention_weights.weight.zero_()
        bias = torch.full((2, 6), -30.0)
        bias[:, [0, 3]] = 0.0
        sca.attention_weights.bias.copy_(bias.flatten())
    attended = lambda weight: sca(query, None, img_feats, shapes,  # noqa: E731
                                  cams._replace(depth_weight=weight)) - query
    offset = sca.output_proj.bias
    full = attended(torch.ones(1, 5, 3)) - offset
    anchor0_half = attended(torch.tensor([0.5, 1.0, 1.0]).expand(1, 5, 3)) - offset
    others_half = attended(torch.tensor([1.0, 0.5, 0.5]).expand(1, 5, 3)) - offset
    assert full.abs().min() > 1e-3
    assert torch.allclose(anchor0_half, 0.5 * full, atol=1e-5)
    assert torch.allclose(others_half, full, atol=1e-5)


def small_fbocc(depth_aware=True, **overrides):
    torch.manual_seed(0)
    kwargs = dict(bev_h=8, bev_w=8, embed_dims=16, num_layers=1, num_heads=2,
                  num_points_in_pillar=2, spatial_points=4, temporal_points=2, ffn_dims=16,
                  num_cams=2, dropout=0.0, pc_range=(-20.0, -20.0, -3.0, 20.0, 20.0, 3.0))
    kwargs.update(overrides)
    view_transform = dict(
        type='LSSViewTransformer', bev_h=kwargs['bev_h'], bev_w=kwargs['bev_w'],
        depth_range=(1.0, 33.0, 4.0),
        pc_range=kwargs['pc_range'],
        depth_net=dict(type='CameraAwareDepthNet', in_channels=16, mid_channels=16,
                       context_channels=16, num_bins=8))
    return FBOccEncoder(view_transform=view_transform, depth_aware=depth_aware, **kwargs), \
        kwargs


@pytest.fixture
def front_rig():
    """(2, 4, 4) projections of two cameras at the lidar origin, looking along lidar +x and
    -x into 64x48 images, focal 32 pixels."""
    intrinsics = torch.tensor([[32.0, 0, 32, 0], [0, 32, 24, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    front = torch.tensor([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    back = torch.tensor([[0.0, 1, 0, 0], [0, 0, -1, 0], [-1, 0, 0, 0], [0, 0, 0, 1]])
    return torch.stack([intrinsics @ front, intrinsics @ back])


def frame_inputs(front_rig):
    lidar2img = front_rig[None]  # (1, 2, 4, 4)
    feats = [torch.randn(1, 2, 16, 6, 8, requires_grad=True)]  # stride 8 of 48x64 images
    return feats, lidar2img, torch.tensor([[48.0, 64.0]]), (48, 64)


def test_fbocc_reduces_to_bevformer_without_forward_bev_and_depth_weights(front_rig,
                                                                           monkeypatch):
    fbocc, kwargs = small_fbocc()
    bevformer = BEVFormerEncoder(**kwargs)
    bevformer.load_state_dict({k: v for k, v in fbocc.state_dict().items()
                               if not k.startswith(('view_transform', 'lss_proj'))})
    with torch.no_grad():  # a zero forward BEV
        fbocc.view_transform.depth_net.context_out.weight.zero_()
        fbocc.view_transform.depth_net.context_out.bias.zero_()
    monkeypatch.setattr(fbocc_encoder, 'anchor_depth_weights',
                        lambda probs, ref, depth, depth_range, **kw: torch.ones_like(depth))
    fbocc.eval(), bevformer.eval()
    inputs = frame_inputs(front_rig)
    out = fbocc(*inputs)
    assert torch.equal(out['bev'], bevformer(*inputs))
    assert out['depth_logits'].shape == (2, 8, 6, 8)



def test_relative_weights_of_an_untrained_depth_net_are_one(front_rig, monkeypatch):
    """A flat depth distribution (zero depth logits): every anchor whose pixel lies half a
    feature cell inside the map gets relative weight 1, so there the attention is
    BEVFormer's (test_depth_weight_one_is_plain_attention_exactly); the bilinear read
    fades it in the outer half cell. FB-OCC's plain probabilities give 1 / num_bins."""
    seen = {}
    original = fbocc_encoder.anchor_depth_weights

    def spy(probs, ref, depth, depth_range, **kw):
        seen['ref'], seen['weight'] = ref, original(probs, ref, depth, depth_range, **kw)
        return seen['weight']

    monkeypatch.setattr(fbocc_encoder, 'anchor_depth_weights', spy)
    for relative, expected in ((True, 1.0), (False, 1 / 8)):
        fbocc, _ = small_fbocc(relative_depth_weights=relative)
        with torch.no_grad():
            fbocc.view_transform.depth_net.depth_out.weight.zero_()
            fbocc.view_transform.depth_net.depth_out.bias.zero_()
            fbocc(*frame_inputs(front_rig))
        x, y = seen['ref'][..., 0] * 8, seen['ref'][..., 1] * 6  # feature cells (6 x 8)
        inner = (x >= 0.5) & (x <= 7.5) & (y >= 0.5) & (y <= 5.5)
        assert inner.sum() > 20 and (~inner).sum() > 0
        weight = seen['weight']
        assert torch.allclose(weight[inner], torch.full_like(weight[inner], expected))
        assert (weight[~inner] <= expected + 1e-6).all()

def test_occupancy_side_trains_the_depth_net_through_depth_aware_attention(front_rig):
    grads = {}
    for depth_aware in (True, False):
        fbocc, _ = small_fbocc(depth_aware)
        with torch.no_grad():  # a zero forward BEV: only the attention can reach the depth
            fbocc.view_transform.depth_net.context_out.weight.zero_()
            fbocc.view_transform.depth_net.context_out.bias.zero_()
        feats, *rest = frame_inputs(front_rig)
        fbocc(feats, *rest)['bev'].square().sum().backward()
        grads[depth_aware] = fbocc.view_transform.depth_net.depth_out.weight.grad
        if depth_aware:  # and every image feature cell gets gradient
            assert (feats[0].grad.abs().sum(2) > 0).all()
    assert grads[True].abs().sum() > 0
    assert grads[False] is None or grads[False].abs().sum() == 0


def test_depth_weights_and_anchor_depths_stay_fp32_under_autocast(front_rig):
    fbocc, _ = small_fbocc()
    feats, lidar2img, image_hw, padded_hw = frame_inputs(front_rig)
    seen = {}
    original = fbocc_encoder.anchor_depth_weights

    def spy(probs, ref, depth, depth_range, **kw):
        seen['depth'], seen['ref'] = depth.dtype, ref.dtype
        seen['weight'] = original(probs.bfloat16(), ref, depth, depth_range, **kw)
        return seen['weight']

    fbocc_encoder.anchor_depth_weights = spy
    try:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            fbocc(feats, lidar2img, image_hw, padded_hw)
    finally:
        fbocc_encoder.anchor_depth_weights = original
    assert seen['depth'] == seen['ref'] == seen['weight'].dtype == torch.float32


def test_bev_sizes_must_agree():
    fbocc, kwargs = small_fbocc()
    with pytest.raises(ValueError, match='same bev_h, bev_w and pc_range'):
        FBOccEncoder(view_transform=dict(fbocc_view_transform_cfg(kwargs), bev_h=10),
                     **kwargs)


def fbocc_view_transform_cfg(kwargs):
    return dict(type='LSSViewTransformer', bev_h=kwargs['bev_h'], bev_w=kwargs['bev_w'],
                depth_range=(1.0, 33.0, 4.0), pc_range=kwargs['pc_range'],
                depth_net=dict(type='CameraAwareDepthNet', in_channels=16, mid_channels=16,
                               context_channels=16, num_bins=8))


def test_forward_bev_initialises_the_queries_and_is_added_back_in_query_order(front_rig,
                                                                             monkeypatch):
    """A 12x6 BEV (not square, so a transposed map would be caught): FB-OCC's output is
    BEVFormer's layers on (learned queries + forward BEV), plus the forward BEV again."""
    fbocc, kwargs = small_fbocc(bev_h=12, bev_w=6)
    bevformer = BEVFormerEncoder(**kwargs)
    bevformer.load_state_dict({k: v for k, v in fbocc.state_dict().items()
                               if not k.startswith(('view_transform', 'lss_proj'))})
    monkeypatch.setattr(fbocc_encoder, 'anchor_depth_weights',
                        lambda probs, ref, depth, depth_range, **kw: torch.ones_like(depth))
    fbocc.eval(), bevformer.eval()
    feats, lidar2img, image_hw, padded_hw = frame_inputs(front_rig)
    with torch.no_grad():
        lss_map, _ = fbocc.view_transform(feats, lidar2img, image_hw, padded_hw)
        lss = lss_map.flatten(2).transpose(1, 2)  # (1, 72, C), index ix * bev_w + iy
        assert lss_map.shape[-2:] == (12, 6) and lss.abs().sum() > 0
        cams = bevformer.camera_queries(lidar2img, image_hw, padded_hw)
        expected = bevformer.refine(bevformer.initial_queries(1) + lss, feats, cams) + lss
        assert torch.allclose(fbocc(feats, lidar2img, image_hw, padded_hw)['bev'], expected,
                              atol=1e-6)


def test_the_backward_path_trains_the_forward_lift(front_rig, monkeypatch):
    """The queries are initialised from the forward BEV without detaching it: the backward
    path's output alone (refined queries, before the re-add) gives the context branch
    gradient."""
    fbocc, _ = small_fbocc()
    refined = {}
    original = fbocc.refine
    monkeypatch.setattr(fbocc, 'refine', lambda *args: refined.setdefault(
        'bev', original(*args)))
    fbocc(*frame_inputs(front_rig))
    grad, = torch.autograd.grad(refined['bev'].square().sum(),
                                fbocc.view_transform.depth_net.context_out.weight)
    assert grad.abs().sum() > 0


def test_attention_gets_each_anchors_camera_depth_and_its_weight(front_rig, monkeypatch):
    """The CameraQueries the cross-attention receives: anchor depths equal the camera z of
    the anchors of the queries they index, and the weights are anchor_depth_weights of the
    softmaxed depth (zero in the padding) at those anchors."""
    fbocc, _ = small_fbocc()
    fbocc.eval()
    seen = {}
    attention = fbocc.layers[0].spatial_attn
    original = attention.forward
    monkeypatch.setattr(attention, 'forward', lambda query, pos, feats, shapes, cams: (
        seen.setdefault('cams', cams), original(query, pos, feats, shapes, cams))[1])
    feats, lidar2img, image_hw, padded_hw = frame_inputs(front_rig)
    image_hw = torch.tensor([[40.0, 64.0]])  # 8 rows of padding below the image
    with torch.no_grad():
        out = fbocc(feats, lidar2img, image_hw, padded_hw)
    cams = seen['cams']
    anchors = fbocc.ref_3d[cams.index[0]]  # (N, L, A, 3)
    homo = torch.cat([anchors, torch.ones_like(anchors[..., :1])], dim=-1)
    camera_z = torch.einsum('nij,nlaj->nlai', lidar2img[0], homo)[..., 2]
    valid = cams.valid[0]
    assert valid.sum() > 0
    assert torch.allclose(cams.depth[valid], camera_z[valid])
    probs = out['depth_logits'].softmax(1)
    probs[:, :, 5:] = 0  # feature rows 5 (centre at 44 px) and below lie in the padding
    expected = anchor_depth_weights(probs, cams.ref, cams.depth, fbocc.depth_range)
    assert torch.allclose(cams.depth_weight, expected)
    assert cams.depth_weight[valid].max() > 0
