"""An OccNet-style cascade voxel decoder: BEV queries lifted to voxel queries in stages, each
stage attending to the camera features at its own resolution."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from occnet.descriptions import get_description
from occnet.models.bev_encoders.bev_grid import project_to_cameras
from occnet.models.bev_encoders.spatial_cross_attention import (SpatialCrossAttention,
                                                                select_camera_queries)
from occnet.models.occ_heads.occupancy_loss import (OccupancyHead, OccupancyLosses, bev_upsample,
                                                   cells_to_voxels, grid_and_classes)
from occnet.registry import MODELS


def grid_centres(shape, pc_range=None, dataset='openscene'):
    """(x * y * z, 3) metres: centres of a voxel grid of `shape` spanning pc_range
    (x_min, y_min, z_min, x_max, y_max, z_max; None: the dataset's point_cloud_range), in
    [x, y, z] order (voxels need not be cubes)."""
    if pc_range is None:
        pc_range = get_description(dataset).point_cloud_range
    axes = [pc_range[i] + (torch.arange(shape[i], dtype=torch.float32) + 0.5)
            * (pc_range[i + 3] - pc_range[i]) / shape[i] for i in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing='ij'), dim=-1).reshape(-1, 3)


class VoxelStage(nn.Module):
    """One cascade stage on voxel queries (B, Q, C), Q = X * Y * Z in [x, y, z] order:
    positional embedding of the voxel centre, deformable cross-attention from each voxel
    centre to the cameras that see it (averaged over them), norm, FFN, norm. The embedding
    sees the centre divided by pc_max, the grid's (x_max, y_max, z_max) metres."""

    def __init__(self, img_channels, dims, num_heads, num_levels, num_points, dropout,
                 pc_max, offset_init_scale=1.0):
        super().__init__()
        self.pc_max = tuple(pc_max)
        self.img_proj = nn.Linear(img_channels, dims)
        self.pos_embed = nn.Sequential(nn.Linear(3, dims), nn.ReLU(True), nn.Linear(dims, dims))
        self.cross_attn = SpatialCrossAttention(dims, num_heads, num_levels, num_points,
                                                num_anchors=1, dropout=dropout,
                                                offset_init_scale=offset_init_scale)
        self.ffn = nn.Sequential(nn.Linear(dims, dims * 2), nn.ReLU(True),
                                 nn.Linear(dims * 2, dims))
        self.norms = nn.ModuleList(nn.LayerNorm(dims) for _ in range(2))

    def forward(self, query, centres, img_feats, spatial_shapes, context):
        """query (B, Q, C); centres (Q, 3) metres; img_feats (B, N, S, C_img) flattened.
        The voxel centres are projected in fp32 (also under autocast)."""
        ref_cam, visible = project_to_cameras(centres[:, None], context['lidar2img'],
                                              context['image_hw'], context['padded_hw'])
        cams = select_camera_queries(ref_cam, visible)
        pos = self.pos_embed(centres / centres.new_tensor(self.pc_max))[None]
        query = self.norms[0](self.cross_attn(query, pos, self.img_proj(img_feats),
                                              spatial_shapes, cams))
        return self.norms[1](query + self.ffn(query))


class HeightTransition(nn.Module):
    """Between two stages of one xy grid: per pillar, a Linear from the Z_i x C_i voxel
    channels to Z_j x C_j, ReLU, and a LayerNorm per new voxel (the channel-to-height step of
    OpenScene's hybrid BEV-voxel transformer). (B, X * Y * Z_i, C_i) -> (B, X * Y * Z_j, C_j).
    """

    def __init__(self, shape_in, dims_in, shape_out, dims_out):
        super().__init__()
        self.shape_in, self.shape_out, self.dims_out = shape_in, shape_out, dims_out
        self.linear = nn.Linear(shape_in[2] * dims_in, shape_out[2] * dims_out)
        self.norm = nn.LayerNorm(dims_out)

    def forward(self, query):
        batch = query.shape[0]
        size_x, size_y, size_z = self.shape_out
        pillars = query.reshape(batch, self.shape_in[0] * self.shape_in[1], -1)
        voxels = torch.relu(self.linear(pillars)).view(batch, size_x * size_y * size_z,
                                                       self.dims_out)
        return self.norm(voxels)


class GridTransition(nn.Module):
    """Between stages of different xy grids: trilinear resampling to the next grid, then a
    Linear to its channels. (B, Q_i, C_i) -> (B, Q_j, C_j)."""

    def __init__(self, shape_in, dims_in, shape_out, dims_out):
        super().__init__()
        self.shape_in, self.shape_out = shape_in, shape_out
        self.linear = nn.Linear(dims_in, dims_out)

    def forward(self, query):
        batch = query.shape[0]
        grid = query.view(batch, *self.shape_in, -1).permute(0, 4, 1, 2, 3)
        grid = F.interpolate(grid, size=self.shape_out, mode='trilinear', align_corners=False)
        return self.linear(grid.flatten(2).transpose(1, 2))


def make_transition(shape_in, dims_in, shape_out, dims_out):
    """HeightTransition when the xy grid stays (OccNet), else GridTransition."""
    same_xy = tuple(shape_in[:2]) == tuple(shape_out[:2])
    return (HeightTransition if same_xy else GridTransition)(shape_in, dims_in, shape_out,
                                                             dims_out)


@MODELS.register_module()
class CascadeVoxelDecoder(OccupancyHead):
    """BEV (bev_h x bev_w) -> stage 0 voxel queries by channel-to-height -> for each stage:
    VoxelStage, then a transition to the next stage's voxel grid -> per-voxel MLP predictor
    to the class logits of the s x s grid voxels each final voxel covers (OccNet, Tong et al.,
    ICCV 2023, in a compact form).

    As in OccNet, the stages should keep the BEV's xy grid and refine height, e.g.
    ((100, 100, 4), (100, 100, 16)) on a 100 x 100 BEV; between two such stages a per-pillar
    channel-to-height Linear lifts Z_i x C_i to Z_j x C_j (HeightTransition). Stages on a
    coarser xy grid are allowed: the BEV is then area-averaged into the first one (every BEV
    cell counts), and stages on different grids are joined by trilinear resampling.

    Args:
        in_channels: BEV and image feature channels C.
        bev_h, bev_w: BEV cells along x and y.
        grid_shape: (X, Y, Z) occupancy grid; None: the dataset's.
        stage_shapes: (x, y, z) voxel grid of each stage, coarse to fine; the last one's x, y
            must divide the grid's (the predictor covers the rest).
        stage_dims: channels of each stage.
        num_heads, num_points: of each stage's deformable cross-attention.
        offset_init_scale: initial spread of those points, in feature cells per point index
            (1.0 as in BEVFormer / OccNet; SpatialCrossAttention).
        num_levels: image feature levels attended to.
        dropout: attention dropout.
        num_classes, use_camera_mask, class_frequencies, loss: as BEVFormerOccHead.
        dataset: name, OccDescription or metainfo dict of the dataset: the stages' voxels span
            its point_cloud_range; also handed to the losses.
    The head needs the current frame's image features and geometry: the detector calls it
    as head(bev, mlvl_feats=..., lidar2img=..., image_hw=..., padded_hw=...).
    """

    uses_images = True

    def __init__(self, in_channels=256, bev_h=200, bev_w=200, grid_shape=None,
                 stage_shapes=((200, 200, 4), (200, 200, 8), (200, 200, 16)),
                 stage_dims=(128, 64, 32), num_heads=4, num_points=4, num_levels=1,
                 dropout=0.0, offset_init_scale=1.0, num_classes=None,
                 use_camera_mask=False, class_frequencies=None,
                 loss=dict(type='OccFocalLoss'), dataset='openscene', init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if len(stage_shapes) != len(stage_dims) or not stage_shapes:
            raise ValueError('stage_shapes and stage_dims need one entry per stage')
        grid_shape, num_classes = grid_and_classes(dataset, grid_shape, num_classes)
        pc_range = get_description(dataset).point_cloud_range
        self.bev_h, self.bev_w, self.grid_shape = bev_h, bev_w, grid_shape
        self.stage_shapes = [tuple(shape) for shape in stage_shapes]
        last = self.stage_shapes[-1]
        first = self.stage_shapes[0]
        if bev_h % first[0] or bev_w % first[1]:
            raise ValueError(f'the first stage {first} must divide the BEV ({bev_h}, {bev_w}) '
                             'along x and y (its cells average whole BEV cells)')
        if last[2] != grid_shape[2]:
            raise ValueError(f'the last stage {last} must have the grid\'s {grid_shape[2]} '
                             f'height cells')
        self.upsample = bev_upsample(grid_shape, last[0], last[1])
        self.losses = OccupancyLosses(loss, use_camera_mask, dataset)
        first_dims = stage_dims[0]
        self.channel_to_height = nn.Conv2d(in_channels, self.stage_shapes[0][2] * first_dims, 1)
        self.stages = nn.ModuleList(
            VoxelStage(in_channels, dims, num_heads, num_levels, num_points, dropout,
                       pc_range[3:], offset_init_scale) for dims in stage_dims)
        self.transitions = nn.ModuleList(
            make_transition(self.stage_shapes[i], stage_dims[i], self.stage_shapes[i + 1],
                            stage_dims[i + 1]) for i in range(len(stage_dims) - 1))
        self.predictor = nn.Sequential(
            nn.Linear(stage_dims[-1], stage_dims[-1] * 2), nn.Softplus(),
            nn.Linear(stage_dims[-1] * 2,
                      self.upsample**2 * self.losses.logit_channels(num_classes)))
        for i, shape in enumerate(self.stage_shapes):
            self.register_buffer(f'centres_{i}', grid_centres(shape, pc_range),
                                 persistent=False)
        self.losses.init_classifier(self.predictor[-1], class_frequencies)

    def lift(self, bev):
        """(B, HW, C) BEV -> stage 0 voxel queries (B, x0 * y0 * z0, C0)."""
        batch, _, channels = bev.shape
        x0, y0, z0 = self.stage_shapes[0]
        bev_map = bev.transpose(1, 2).reshape(batch, channels, self.bev_h, self.bev_w)
        if (x0, y0) != (self.bev_h, self.bev_w):  # area average: every BEV cell counts
            bev_map = F.avg_pool2d(bev_map, (self.bev_h // x0, self.bev_w // y0))
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
                query = self.transitions[i](query)
        cells = query.view(batch, *self.stage_shapes[-1], -1)
        return cells_to_voxels(self.predictor(cells), self.upsample, self.grid_shape)
