"""An OccNet-style cascade voxel decoder: BEV queries lifted to voxel queries in stages, each
stage attending to the camera features at its own resolution."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from occnet.constants import GRID_SHAPE, NUM_CLASSES, POINT_CLOUD_RANGE
from occnet.models.bev_encoders.bev_grid import project_to_cameras
from occnet.models.bev_encoders.spatial_cross_attention import SpatialCrossAttention
from occnet.models.occ_heads.occupancy_loss import (OccupancyLosses, argmax_classes,
                                                   bev_upsample, cells_to_voxels,
                                                   init_logit_prior)
from occnet.registry import MODELS


def grid_centres(shape, pc_range=POINT_CLOUD_RANGE):
    """(x * y * z, 3) metres: centres of a voxel grid of `shape` spanning pc_range, in
    [x, y, z] order (voxels need not be cubes)."""
    axes = [pc_range[i] + (torch.arange(shape[i], dtype=torch.float32) + 0.5)
            * (pc_range[i + 3] - pc_range[i]) / shape[i] for i in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing='ij'), dim=-1).reshape(-1, 3)


class VoxelStage(nn.Module):
    """One cascade stage on voxel queries (B, Q, C), Q = X * Y * Z in [x, y, z] order:
    positional embedding of the voxel centre, deformable cross-attention from each voxel
    centre to the cameras that see it (averaged over them), norm, FFN, norm."""

    def __init__(self, img_channels, dims, num_heads, num_levels, num_points, dropout):
        super().__init__()
        self.img_proj = nn.Linear(img_channels, dims)
        self.pos_embed = nn.Sequential(nn.Linear(3, dims), nn.ReLU(True), nn.Linear(dims, dims))
        self.cross_attn = SpatialCrossAttention(dims, num_heads, num_levels, num_points,
                                                num_anchors=1, dropout=dropout)
        self.ffn = nn.Sequential(nn.Linear(dims, dims * 2), nn.ReLU(True),
                                 nn.Linear(dims * 2, dims))
        self.norms = nn.ModuleList(nn.LayerNorm(dims) for _ in range(2))

    def forward(self, query, centres, img_feats, spatial_shapes, context):
        """query (B, Q, C); centres (Q, 3) metres; img_feats (B, N, S, C_img) flattened."""
        ref_cam, visible = project_to_cameras(centres[:, None], context['lidar2img'],
                                              context['image_hw'], context['padded_hw'])
        pos = self.pos_embed(centres / centres.new_tensor(POINT_CLOUD_RANGE[3:]))[None]
        query = self.norms[0](self.cross_attn(query, pos, self.img_proj(img_feats),
                                              spatial_shapes, ref_cam.to(query.dtype),
                                              visible))
        return self.norms[1](query + self.ffn(query))


@MODELS.register_module()
class CascadeVoxelDecoder(BaseModule):
    """BEV (bev_h x bev_w) -> stage 0 voxel queries by channel-to-height -> for each stage:
    VoxelStage, then trilinear upsampling to the next stage's voxel grid and a linear map to
    its channels -> per-voxel MLP predictor to the class logits of the s x s grid voxels each
    final voxel covers (OccNet, Tong et al., ICCV 2023, in a compact form).

    Args:
        in_channels: BEV and image feature channels C.
        bev_h, bev_w: BEV cells along x and y.
        grid_shape: (X, Y, Z) occupancy grid.
        stage_shapes: (x, y, z) voxel grid of each stage, coarse to fine; the last one's x, y
            must divide the grid's (the predictor covers the rest).
        stage_dims: channels of each stage.
        num_heads, num_points: of each stage's deformable cross-attention.
        num_levels: image feature levels attended to.
        dropout: attention dropout.
        use_camera_mask, class_frequencies, loss: as BEVFormerOccHead.
    The head needs the current frame's image features and geometry: the detector calls it
    as head(bev, mlvl_feats=..., lidar2img=..., image_hw=..., padded_hw=...).
    """

    uses_images = True

    def __init__(self, in_channels=256, bev_h=200, bev_w=200, grid_shape=GRID_SHAPE,
                 stage_shapes=((50, 50, 4), (100, 100, 8), (200, 200, 16)),
                 stage_dims=(128, 64, 32), num_heads=4, num_points=4, num_levels=1,
                 dropout=0.0, num_classes=NUM_CLASSES, use_camera_mask=False,
                 class_frequencies=None, loss=dict(type='OccFocalLoss'), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if len(stage_shapes) != len(stage_dims) or not stage_shapes:
            raise ValueError('stage_shapes and stage_dims need one entry per stage')
        self.bev_h, self.bev_w, self.grid_shape = bev_h, bev_w, tuple(grid_shape)
        self.stage_shapes = [tuple(shape) for shape in stage_shapes]
        last = self.stage_shapes[-1]
        if last[2] != grid_shape[2]:
            raise ValueError(f'the last stage {last} must have the grid\'s {grid_shape[2]} '
                             f'height cells')
        self.upsample = bev_upsample(grid_shape, last[0], last[1])
        first_dims = stage_dims[0]
        self.channel_to_height = nn.Conv2d(in_channels, self.stage_shapes[0][2] * first_dims, 1)
        self.stages = nn.ModuleList(
            VoxelStage(in_channels, dims, num_heads, num_levels, num_points, dropout)
            for dims in stage_dims)
        self.transitions = nn.ModuleList(
            nn.Linear(stage_dims[i], stage_dims[i + 1]) for i in range(len(stage_dims) - 1))
        self.predictor = nn.Sequential(
            nn.Linear(stage_dims[-1], stage_dims[-1] * 2), nn.Softplus(),
            nn.Linear(stage_dims[-1] * 2, self.upsample**2 * num_classes))
        for i, shape in enumerate(self.stage_shapes):
            self.register_buffer(f'centres_{i}', grid_centres(shape), persistent=False)
        self.losses = OccupancyLosses(loss, use_camera_mask)
        if class_frequencies is not None:
            init_logit_prior(self.predictor[-1], class_frequencies, self.losses.class_weight,
                             self.upsample)

    def lift(self, bev):
        """(B, HW, C) BEV -> stage 0 voxel queries (B, x0 * y0 * z0, C0)."""
        batch, _, channels = bev.shape
        x0, y0, z0 = self.stage_shapes[0]
        bev_map = bev.transpose(1, 2).reshape(batch, channels, self.bev_h, self.bev_w)
        if (x0, y0) != (self.bev_h, self.bev_w):
            bev_map = F.interpolate(bev_map, size=(x0, y0), mode='bilinear',
                                    align_corners=False)
        voxels = self.channel_to_height(bev_map).view(batch, z0, -1, x0, y0)
        return voxels.permute(0, 3, 4, 1, 2).reshape(batch, x0 * y0 * z0, -1)

    def forward(self, bev, mlvl_feats, lidar2img, image_hw, padded_hw):
        """bev (B, bev_h * bev_w, C); mlvl_feats list of (B, N, C, h_l, w_l); lidar2img
        (B, N, 4, 4); image_hw (B, 2); padded_hw (H_pad, W_pad) -> (B, K, X, Y, Z) logits."""
        context = dict(lidar2img=lidar2img, image_hw=image_hw, padded_hw=padded_hw)
        img_feats = torch.cat([f.flatten(3).transpose(2, 3) for f in mlvl_feats], dim=2)
        spatial_shapes = [tuple(f.shape[-2:]) for f in mlvl_feats]
        query = self.lift(bev)
        batch = bev.shape[0]
        for i, stage in enumerate(self.stages):
            query = stage(query, getattr(self, f'centres_{i}'), img_feats, spatial_shapes,
                          context)
            if i + 1 < len(self.stages):
                grid = query.view(batch, *self.stage_shapes[i], -1).permute(0, 4, 1, 2, 3)
                grid = F.interpolate(grid, size=self.stage_shapes[i + 1], mode='trilinear',
                                     align_corners=False)
                query = self.transitions[i](grid.flatten(2).transpose(1, 2))
        cells = query.view(batch, *self.stage_shapes[-1], -1)
        return cells_to_voxels(self.predictor(cells), self.upsample, self.grid_shape)

    def loss(self, occ_logits, voxel_semantics, mask_camera=None):
        """Classification losses (OccupancyLosses): occ_logits (B, K, X, Y, Z),
        voxel_semantics (B, X, Y, Z), mask_camera optional (B, X, Y, Z) bool."""
        return self.losses(occ_logits, voxel_semantics, mask_camera)

    predict = staticmethod(argmax_classes)
