"""What a camera-aware network is told about each camera: its intrinsics and extrinsics,
recovered from the projection `lidar2img` the pipeline keeps right through every resize and
flip."""
import torch

CAMERA_DIMS = 16  # fx, fy, cx, cy (image-size units), lidar->camera rotation (9), translation


def split_projection(lidar2img):
    """Intrinsics and extrinsics of projections lidar2img = K4 @ lidar2cam.

    The 3x3 part M = K @ R is split by an RQ decomposition (K upper triangular with a
    positive diagonal, R orthogonal; R is a reflection when the scene was mirrored, as
    RandomFlipBEV does), and t = K^-1 @ lidar2img[:3, 3]. Runs in float64 with autocast
    off, whatever the input dtype.

    Args:
        lidar2img: (..., 4, 4) (or (..., 3, 4)) lidar -> pixel projections.
    Returns:
        K (..., 3, 3) pixels, R (..., 3, 3), t (..., 3) metres, in lidar2img's dtype; a lidar
        point p is at R @ p + t in the camera frame.
    """
    with torch.autocast(lidar2img.device.type, enabled=False):
        matrix = lidar2img[..., :3, :].double()
        flip = torch.eye(3, dtype=matrix.dtype, device=matrix.device).flip(0)
        # QR of (P M)^T = Q U gives M = (P U^T P) (P Q^T): upper triangular times orthogonal
        q, u = torch.linalg.qr((flip @ matrix[..., :3]).transpose(-1, -2))
        intrinsics = flip @ u.transpose(-1, -2) @ flip
        rotation = flip @ q.transpose(-1, -2)
        signs = torch.sign(torch.diagonal(intrinsics, dim1=-2, dim2=-1))
        signs = torch.where(signs == 0, torch.ones_like(signs), signs)
        intrinsics = intrinsics * signs[..., None, :]
        rotation = rotation * signs[..., :, None]
        translation = torch.linalg.solve(intrinsics, matrix[..., 3:]).squeeze(-1)
    dtype = lidar2img.dtype
    return intrinsics.to(dtype), rotation.to(dtype), translation.to(dtype)


def camera_parameters(lidar2img, img_shape):
    """(..., CAMERA_DIMS) float32 per camera: fx / W, fy / H, cx / W, cy / H, the rotation
    row by row and the translation (metres), for a camera-aware MLP.

    Args:
        lidar2img: (..., 4, 4) projections to the network's input pixels.
        img_shape: (H, W) of the network input, pixels.
    """
    intrinsics, rotation, translation = split_projection(lidar2img.float())
    height, width = img_shape
    scaled = torch.stack([intrinsics[..., 0, 0] / width, intrinsics[..., 1, 1] / height,
                          intrinsics[..., 0, 2] / width, intrinsics[..., 1, 2] / height], -1)
    return torch.cat([scaled, rotation.flatten(-2), translation], dim=-1).float()
