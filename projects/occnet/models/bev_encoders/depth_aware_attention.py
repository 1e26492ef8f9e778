"""FB-OCC's depth-aware attention weight: how probable a camera's predicted depth
distribution finds each pillar anchor at the depth where the anchor actually is."""
import torch
import torch.nn.functional as F


def anchor_depth_weights(depth_probs, ref, depth, depth_range, relative=False):
    """P(anchor's depth bin) at the anchor's pixel, one weight per (query, anchor).

    The bin is the one holding the anchor's camera depth, floor((d - d_min) / step), clamped
    to the first and last bin as FB-OCC does (no interpolation along depth). The probability
    of that bin is read bilinearly at the anchor's pixel (align_corners=False, as the
    deformable attention samples), zero outside the feature map.

    Args:
        depth_probs: (B * N, D, H, W) depth distributions (softmax over D) of each camera's
            feature map, which covers the padded input image.
        ref: (B * N, L, A, 2) anchor locations normalised to [0, 1] of the padded image
            (x then y), as CameraQueries.ref.
        depth: (B * N, L, A) anchor depths along the camera axis, metres (CameraQueries.depth).
        depth_range: (d_min, d_max, step) metres of the bins.
        relative: divide each pixel's distribution by its most probable bin's probability
            first (FB-OCC: False). The weight is then 1 at the pixel's predicted depth and 1
            everywhere for a flat distribution, so an untrained depth net leaves BEVFormer's
            attention unchanged instead of scaling it by 1 / D.
    Returns:
        (B * N, L, A) float32 weights in [0, 1]; differentiable in depth_probs. Computed in
        fp32 with autocast off.
    """
    bins = depth_probs.shape[1]
    d_min, _, step = depth_range
    with torch.autocast(depth_probs.device.type, enabled=False):
        probs = depth_probs.float()
        if relative:  # padding pixels (all bins 0) stay 0
            probs = probs / probs.amax(1, keepdim=True).clamp_min(1e-12)
        bin_index = ((depth.float() - d_min) / step).floor().clamp(0, bins - 1)
        # one trilinear grid_sample over (D, H, W): z sits on the bin's centre, so the
        # weight along depth is all on that bin, and x, y are read bilinearly with zeros
        # outside; far-off anchors (behind a camera) are clamped to a point beyond the map
        xy = (ref.float() * 2 - 1).clamp(-2, 2)  # grid_sample's [-1, 1] of the padded map
        grid = torch.cat([xy, ((2 * bin_index + 1) / bins - 1)[..., None]], -1)  # (B*N,L,A,3)
        return F.grid_sample(probs[:, None], grid[:, None], mode='bilinear',
                             padding_mode='zeros', align_corners=False)[:, 0, 0]


def anchor_depth_weights_reference(depth_probs, ref, depth, depth_range, relative=False):
    """`anchor_depth_weights` by explicit bilinear gathers (as FB-OCC reads it): the bin's
    probability at the four pixels around the anchor, each weighted by its bilinear share,
    zero for a neighbour outside the map. For tests and benchmarks/depth_weights_speed.py;
    same arguments, shapes and result (within float rounding)."""
    _, bins, height, width = depth_probs.shape
    d_min, _, step = depth_range
    with torch.autocast(depth_probs.device.type, enabled=False):
        probs = depth_probs.float()
        if relative:
            probs = probs / probs.amax(1, keepdim=True).clamp_min(1e-12)
        probs = probs.flatten(1)  # (B*N, D*H*W)
        ref, depth = ref.float(), depth.float()
        bin_index = ((depth - d_min) / step).floor().clamp(0, bins - 1).long()
        # pixel coordinates, clamped a little beyond the map as grid_sample's [-2, 2]
        x = (ref[..., 0].clamp(-0.5, 1.5) * width - 0.5)
        y = (ref[..., 1].clamp(-0.5, 1.5) * height - 0.5)
        x0, y0 = x.floor(), y.floor()
        weight = torch.zeros_like(depth)
        for dx in (0, 1):
            for dy in (0, 1):
                xi, yi = x0 + dx, y0 + dy
                bilinear = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
                inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
                flat = (bin_index * height + yi.clamp(0, height - 1).long()) * width \
                    + xi.clamp(0, width - 1).long()
                picked = torch.gather(probs, 1, flat.flatten(1)).view_as(depth)
                weight = weight + torch.where(inside, bilinear * picked,
                                              torch.zeros_like(picked))
    return weight
