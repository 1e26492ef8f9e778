"""Pure geometry of the BEV query grid: reference points, camera projection, ego-motion alignment.

The BEV grid covers the occupancy range in the current lidar frame. BEV tensors are laid out
(B, bev_h * bev_w, C) with bev_h cells along lidar x and bev_w cells along lidar y (the same
[x, y] order as the occupancy grid); query index = ix * bev_w + iy. As a 2D map
(B, C, bev_h, bev_w), rows follow x and columns follow y.
"""
import torch
import torch.nn.functional as F


def bev_cell_centers(bev_h, bev_w, pc_range, device=None):
    """Metric (x, y) centres of the BEV cells, (bev_h * bev_w, 2) metres, query order."""
    x_min, y_min, _, x_max, y_max, _ = pc_range
    xs = x_min + (torch.arange(bev_h, device=device, dtype=torch.float32) + 0.5) * (
        (x_max - x_min) / bev_h)
    ys = y_min + (torch.arange(bev_w, device=device, dtype=torch.float32) + 0.5) * (
        (y_max - y_min) / bev_w)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing='ij')
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)


def bev_reference_points_2d(bev_h, bev_w, device=None):
    """Normalised (u, v) in [0, 1] of each BEV cell as a location in a (bev_h, bev_w) map
    for deformable attention: u along columns (y), v along rows (x). (bev_h * bev_w, 2)."""
    rows = (torch.arange(bev_h, device=device, dtype=torch.float32) + 0.5) / bev_h
    cols = (torch.arange(bev_w, device=device, dtype=torch.float32) + 0.5) / bev_w
    grid_r, grid_c = torch.meshgrid(rows, cols, indexing='ij')
    return torch.stack([grid_c, grid_r], dim=-1).reshape(-1, 2)


def pillar_reference_points(bev_h, bev_w, num_points_in_pillar, pc_range, device=None):
    """3D anchors of each BEV pillar: (bev_h * bev_w, D, 3) metres in the lidar frame, with D
    heights spread uniformly over the pillar (centres of D equal slices of [z_min, z_max])."""
    centers = bev_cell_centers(bev_h, bev_w, pc_range, device)
    z_min, z_max = pc_range[2], pc_range[5]
    zs = z_min + (torch.arange(num_points_in_pillar, device=device, dtype=torch.float32) +
                  0.5) * ((z_max - z_min) / num_points_in_pillar)
    num_cells = centers.shape[0]
    xy = centers[:, None, :].expand(num_cells, num_points_in_pillar, 2)
    z = zs[None, :, None].expand(num_cells, num_points_in_pillar, 1)
    return torch.cat([xy, z], dim=-1)


def project_to_cameras(points, lidar2img, image_hw, padded_hw, eps=1e-5, with_depth=False):
    """Project lidar points into every camera.

    Args:
        points: (P, D, 3) metres in the lidar frame (shared by the batch).
        lidar2img: (B, N, 4, 4) projection to pixels of the (resized) images.
        image_hw: (B, 2) height, width in pixels of the valid (unpadded) image area.
        padded_hw: (H_pad, W_pad) size of the image tensor the features were computed on.
    Returns:
        uv: (B, N, P, D, 2) locations normalised by the padded size (feature-map coordinates
            in [0, 1], x then y).
        visible: (B, N, P, D) bool, in front of the camera and inside the valid image area.
        depth: (B, N, P, D) fp32 metres along each camera's optical axis, with with_depth.
    Always computed in fp32, also under autocast (bf16 would move a point by pixels at
    960 x 544, and fp16 camera coordinates overflow).
    """
    with torch.autocast(points.device.type, enabled=False):  # fp32 whatever the caller's mode
        points = points.float()
        homo = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)  # (P, D, 4)
        cam = torch.einsum('bnij,pdj->bnpdi', lidar2img.float(), homo)  # (B, N, P, D, 4)
        depth = cam[..., 2]
        pixels = cam[..., :2] / depth.clamp(min=eps)[..., None]
        height = image_hw[:, 0].float().view(-1, 1, 1, 1)
        width = image_hw[:, 1].float().view(-1, 1, 1, 1)
        visible = ((depth > eps) & (pixels[..., 0] >= 0) & (pixels[..., 0] < width) &
                   (pixels[..., 1] >= 0) & (pixels[..., 1] < height))
        scale = pixels.new_tensor([padded_hw[1], padded_hw[0]])
        if with_depth:
            return pixels / scale, visible, depth
        return pixels / scale, visible


def align_prev_bev(prev_bev, cur2prev, bev_h, bev_w, pc_range):
    """Resample the previous frame's BEV onto the current frame's BEV cells.

    Each current cell centre (x, y, 0) is mapped into the previous lidar frame with
    `cur2prev` and the previous BEV is sampled there (bilinear, zeros outside).

    Args:
        prev_bev: (B, bev_h * bev_w, C) features in the previous frame's grid.
        cur2prev: (B, 4, 4) transform from current to previous lidar coordinates.
    Returns:
        (B, bev_h * bev_w, C) previous features aligned with the current grid, in
        prev_bev's dtype (the resampling runs in fp32 under autocast).
    """
    batch, _, channels = prev_bev.shape
    with torch.autocast(prev_bev.device.type, enabled=False):  # geometry and sampling in fp32
        centers = bev_cell_centers(bev_h, bev_w, pc_range, prev_bev.device)  # (HW, 2)
        homo = torch.cat([centers, torch.zeros_like(centers[:, :1]),
                          torch.ones_like(centers[:, :1])], dim=-1)  # (HW, 4)
        prev_xy = torch.einsum('bij,pj->bpi', cur2prev.float(), homo)[..., :2]  # (B, HW, 2)
        x_min, y_min, _, x_max, y_max, _ = pc_range
        # grid_sample: grid[..., 0] indexes columns (y), grid[..., 1] rows (x), both in [-1, 1]
        grid = torch.stack([(prev_xy[..., 1] - y_min) / (y_max - y_min),
                            (prev_xy[..., 0] - x_min) / (x_max - x_min)], dim=-1) * 2 - 1
        prev_map = prev_bev.float().transpose(1, 2).reshape(batch, channels, bev_h, bev_w)
        aligned = F.grid_sample(prev_map, grid.view(batch, bev_h, bev_w, 2), mode='bilinear',
                                padding_mode='zeros', align_corners=False)
    return aligned.flatten(2).transpose(1, 2).to(prev_bev.dtype)
