"""The frustum of a camera feature map: where each (depth bin, feature pixel) sits in 3D."""
import torch

from occnet.models.view_transforms.depth_bins import bin_centres


def frustum_points(lidar2img, feat_shape, stride, depth_range):
    """Lidar-frame positions of every depth-bin centre along every feature pixel's ray.

    Feature pixel (i, j) at `stride` looks through image pixel ((j + 0.5) * stride,
    (i + 0.5) * stride); its point in bin k is the lidar point that lidar2img projects to that
    pixel at camera depth d_k (bin_centres). Computed in float64 with autocast off.

    Args:
        lidar2img: (B, N, 4, 4) projections to the network's input pixels.
        feat_shape: (H, W) of the feature map.
        stride: input pixels per feature pixel.
        depth_range: (d_min, d_max, step) metres.
    Returns:
        (B, N, D, H, W, 3) float32 metres in the lidar frame.
    """
    device = lidar2img.device
    height, width = feat_shape
    with torch.autocast(device.type, enabled=False):
        depth = bin_centres(depth_range, device).double()
        v = (torch.arange(height, dtype=torch.float64, device=device) + 0.5) * stride
        u = (torch.arange(width, dtype=torch.float64, device=device) + 0.5) * stride
        d, v, u = torch.meshgrid(depth, v, u, indexing='ij')  # (D, H, W)
        pixels = torch.stack([u * d, v * d, d, torch.ones_like(d)], dim=-1)  # homogeneous
        img2lidar = torch.linalg.inv(lidar2img.double())  # (B, N, 4, 4)
        points = torch.einsum('bnij,dhwj->bndhwi', img2lidar, pixels)[..., :3]
    return points.float()
