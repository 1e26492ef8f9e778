"""What reduced precision does to the camera geometry, and that occnet's stays exact.

    python benchmarks/amp_geometry.py

Projects the 200x200x16 voxel centres of the occupancy grid into the 8 cameras of the
synthetic rig (OpenScene layout) at 960x540 (padded to 960x544), as the cascade decoder does:
    fp32                     the reference;
    occnet under autocast    project_to_cameras inside bf16 and fp16 autocast (it keeps fp32);
    bf16 / fp16 projection   the projection computed in that dtype and the result kept in it
                             (the cascade decoder before issue 13 did this under autocast).
Prints, per row, the pixel error of the points visible in both (median and largest), the
visibility flags that differ from fp32, and non-finite coordinates; last, one JSON line.
"""
import json

import numpy as np
import torch

from occnet.datasets.synthetic.rig import make_rig
from occnet.descriptions import OPENSCENE
from occnet.geometry import lidar2img_matrix
from occnet.models.bev_encoders.bev_grid import project_to_cameras
from occnet.models.occ_heads.cascade_voxel_decoder import grid_centres

IMAGE_HW = torch.tensor([[540, 960]])
PADDED = (544, 960)


def reduced_projection(points, lidar2img, dtype, eps=1e-5):
    """project_to_cameras' arithmetic, all in `dtype`; (B, N, P, D, 2) uv and visibility."""
    homo = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1).to(dtype)
    cam = torch.einsum('bnij,pdj->bnpdi', lidar2img.to(dtype), homo)
    depth = cam[..., 2]
    pixels = cam[..., :2] / depth.clamp(min=eps)[..., None]
    visible = ((depth > eps) & (pixels[..., 0] >= 0) & (pixels[..., 0] < 960) &
               (pixels[..., 1] >= 0) & (pixels[..., 1] < 540))
    return pixels / pixels.new_tensor([PADDED[1], PADDED[0]]), visible


def compare(name, uv, visible, reference):
    ref_uv, ref_visible = reference
    both = visible & ref_visible
    error = ((uv.float() - ref_uv) * torch.tensor([PADDED[1], PADDED[0]])).norm(dim=-1)[both]
    finite = torch.isfinite(error)
    row = dict(case=name, median_px=float(error[finite].median()) if finite.any() else None,
               max_px=float(error[finite].max()) if finite.any() else None,
               flipped=int((visible != ref_visible).sum()), non_finite=int((~finite).sum()),
               compared=int(both.sum()))
    print(f"{name:26s} median {row['median_px']:.3f} px  max {row['max_px']:.3f} px  "
          f"visibility flipped {row['flipped']:7d}  non-finite {row['non_finite']}")
    return row


def main():
    cams = make_rig(np.random.default_rng(0), (960, 540))
    lidar2img = torch.tensor(np.stack([lidar2img_matrix(cams[c])
                                       for c in OPENSCENE.camera_names]),
                             dtype=torch.float32)[None]
    centres = grid_centres(OPENSCENE.grid_shape)[:, None]  # (640000, 1, 3)
    reference = project_to_cameras(centres, lidar2img, IMAGE_HW, PADDED)
    rows = []
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast('cpu', dtype=dtype):
            uv, visible = project_to_cameras(centres, lidar2img, IMAGE_HW, PADDED)
        rows.append(compare(f'occnet under {str(dtype)[6:]} autocast', uv, visible, reference))
    for dtype in (torch.bfloat16, torch.float16):
        uv, visible = reduced_projection(centres, lidar2img, dtype)
        rows.append(compare(f'{str(dtype)[6:]} projection', uv, visible, reference))
    print(json.dumps(dict(voxels=centres.shape[0], cameras=len(OPENSCENE.camera_names),
                          rows=rows)))


if __name__ == '__main__':
    main()
