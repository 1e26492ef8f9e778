"""BEVFormer encoder: learned BEV queries refined by temporal self-attention and spatial
cross-attention over the cameras."""
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint

from occnet.descriptions import get_description
from occnet.models.bev_encoders.bev_grid import (align_prev_bev, bev_reference_points_2d,
                                                 pillar_reference_points, project_to_cameras)
from occnet.models.bev_encoders.spatial_cross_attention import (SpatialCrossAttention,
                                                                select_camera_queries)
from occnet.models.bev_encoders.temporal_self_attention import TemporalSelfAttention
from occnet.registry import MODELS

CAN_BUS_DIMS = 18


class BEVFormerLayer(nn.Module):
    """temporal self-attn -> norm -> spatial cross-attn -> norm -> FFN -> norm. The BEV
    positional embedding enters the temporal self-attention only (as BEVFormer), or also
    the spatial cross-attention's offsets and weights with spatial_query_pos."""

    def __init__(self, temporal_attn, spatial_attn, embed_dims, ffn_dims, dropout,
                 spatial_query_pos=False):
        super().__init__()
        self.spatial_query_pos = spatial_query_pos
        self.temporal_attn = temporal_attn
        self.spatial_attn = spatial_attn
        self.ffn = nn.Sequential(nn.Linear(embed_dims, ffn_dims), nn.ReLU(inplace=True),
                                 nn.Dropout(dropout), nn.Linear(ffn_dims, embed_dims),
                                 nn.Dropout(dropout))
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims) for _ in range(3))

    def forward(self, query, query_pos, initial, prev_bev, has_prev, ref_2d, bev_hw, img_feats,
                spatial_shapes, cams):
        query = self.norms[0](self.temporal_attn(query, query_pos, ref_2d, bev_hw, initial,
                                                 prev_bev, has_prev))
        spatial_pos = query_pos if self.spatial_query_pos else None
        query = self.norms[1](self.spatial_attn(query, spatial_pos, img_feats, spatial_shapes,
                                                cams))
        return self.norms[2](query + self.ffn(query))


@MODELS.register_module()
class BEVFormerEncoder(BaseModule):
    """Builds a (B, bev_h * bev_w, C) BEV feature from multi-camera image features.

    Args:
        bev_h, bev_w: BEV cells along lidar x and y.
        embed_dims: channels C (must equal the neck's output channels).
        num_layers: encoder layers.
        num_heads: attention heads.
        num_levels: image feature levels used.
        num_cams: cameras; None: the dataset's (len(camera_names)).
        num_points_in_pillar: D height anchors per pillar.
        temporal_points: sampling points per head and frame in temporal self-attention.
        spatial_points: sampling points per head and level in spatial cross-attention.
        ffn_dims: hidden size of the FFN.
        dropout: dropout rate.
        pc_range: metric range covered by the BEV, [x_min, y_min, z_min, x_max, y_max, z_max]
            metres; None: the dataset's point_cloud_range.
        pillar_z_range: (z_min, z_max) metres spanned by the pillar anchors; defaults to the
            pc_range heights. Narrowing it to where objects are puts more anchors on them.
        with_cp: activation checkpointing: in training each layer keeps only its inputs and
            recomputes its activations in the backward pass (dropout masks are replayed).
        use_can_bus: add an MLP of the frame's (18,) CAN-bus vector (ego motion since the
            previous frame, pose, speed, acceleration, yaw rate; datasets.temporal) to every
            BEV query before the first layer, as BEVFormer does.
        tsa_mode: temporal self-attention form, 'published' (BEVFormer) or 'joint'
            (TemporalSelfAttention).
        offset_init_scale: spatial cross-attention's initial point spread, in feature cells
            per point index (1.0 as in BEVFormer; SpatialCrossAttention).
        spatial_query_pos: also add the BEV positional embedding to the queries the spatial
            cross-attention predicts offsets and weights from (occnet before issue 13;
            BEVFormer does not).
        dataset: name, OccDescription or metainfo dict of the dataset.
    Geometry stays fp32 under autocast: the anchors' projections into the cameras, the
    ego-motion alignment of the previous BEV and the attention sampling locations.
    """

    def __init__(self, bev_h=200, bev_w=200, embed_dims=256, num_layers=3, num_heads=8,
                 num_levels=1, num_cams=None, num_points_in_pillar=4,
                 temporal_points=4, spatial_points=8, ffn_dims=512, dropout=0.1,
                 pc_range=None, pillar_z_range=None, with_cp=False,
                 use_can_bus=False, tsa_mode='published', offset_init_scale=1.0,
                 spatial_query_pos=False, dataset='openscene', init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        desc = get_description(dataset)
        num_cams = len(desc.camera_names) if num_cams is None else num_cams
        pc_range = desc.point_cloud_range if pc_range is None else pc_range
        self.with_cp = with_cp
        self.bev_h, self.bev_w, self.embed_dims = bev_h, bev_w, embed_dims
        self.pc_range = tuple(pc_range)
        self.bev_queries = nn.Embedding(bev_h * bev_w, embed_dims)
        self.row_embed = nn.Embedding(bev_h, embed_dims // 2)
        self.col_embed = nn.Embedding(bev_w, embed_dims - embed_dims // 2)
        self.cams_embeds = nn.Parameter(torch.randn(num_cams, embed_dims) * 0.02)
        self.level_embeds = nn.Parameter(torch.randn(num_levels, embed_dims) * 0.02)
        self.layers = nn.ModuleList(
            BEVFormerLayer(
                TemporalSelfAttention(embed_dims, num_heads, temporal_points, dropout,
                                      mode=tsa_mode),
                SpatialCrossAttention(embed_dims, num_heads, num_levels, spatial_points,
                                      num_points_in_pillar, dropout, offset_init_scale),
                embed_dims, ffn_dims, dropout, spatial_query_pos) for _ in range(num_layers))
        self.use_can_bus = use_can_bus
        if use_can_bus:
            self.can_bus_mlp = nn.Sequential(
                nn.Linear(CAN_BUS_DIMS, embed_dims // 2), nn.ReLU(inplace=True),
                nn.Linear(embed_dims // 2, embed_dims), nn.ReLU(inplace=True),
                nn.LayerNorm(embed_dims))
        anchor_range = list(self.pc_range)
        if pillar_z_range is not None:
            anchor_range[2], anchor_range[5] = pillar_z_range
        self.register_buffer('ref_3d', pillar_reference_points(
            bev_h, bev_w, num_points_in_pillar, anchor_range), persistent=False)
        self.register_buffer('ref_2d', bev_reference_points_2d(bev_h, bev_w), persistent=False)

    def positional_embedding(self):
        """(1, bev_h * bev_w, C) learned row (x) + column (y) embedding."""
        rows = self.row_embed.weight[:, None, :].expand(-1, self.bev_w, -1)
        cols = self.col_embed.weight[None, :, :].expand(self.bev_h, -1, -1)
        return torch.cat([rows, cols], dim=-1).reshape(1, -1, self.embed_dims)

    def flatten_features(self, mlvl_feats):
        """(B, N, C, h_l, w_l) per level -> (B, N, S, C) with camera and level embeddings."""
        if mlvl_feats[0].shape[1] != self.cams_embeds.shape[0]:
            raise ValueError(f'the images come from {mlvl_feats[0].shape[1]} cameras but the '
                             f'encoder has num_cams={self.cams_embeds.shape[0]} camera '
                             'embeddings; set model.bev_encoder.num_cams to the rig')
        flat = []
        for level, feat in enumerate(mlvl_feats):
            feat = feat.flatten(3).transpose(2, 3)  # (B, N, h*w, C)
            flat.append(feat + self.cams_embeds[None, :, None] + self.level_embeds[level])
        return torch.cat(flat, dim=2), [tuple(f.shape[-2:]) for f in mlvl_feats]

    def initial_queries(self, batch, can_bus=None):
        """(B, HW, C) learned BEV queries, plus the CAN-bus MLP's output when it is on."""
        query = self.bev_queries.weight[None].expand(batch, -1, -1)
        if not self.use_can_bus:
            return query
        if can_bus is None:
            raise ValueError('use_can_bus=True but no can_bus was given: the samples need '
                             "'can_bus' (OpenSceneOccDataset adds it)")
        return query + self.can_bus_mlp(can_bus.float())[:, None, :]

    def forward(self, mlvl_feats, lidar2img, image_hw, padded_hw, prev_bev=None,
                cur2prev=None, has_prev=None, can_bus=None):
        """
        Args:
            mlvl_feats: list of (B, N, C, h_l, w_l) camera features.
            lidar2img: (B, N, 4, 4) projection to pixels of the network input.
            image_hw: (B, 2) valid image height and width (pixels, before padding).
            padded_hw: (H_pad, W_pad) input tensor size.
            prev_bev: (B, HW, C) previous frame's BEV in its own grid, or None.
            cur2prev: (B, 4, 4) current -> previous lidar transform (needed with prev_bev).
            has_prev: (B,) bool, which samples have a usable prev_bev.
            can_bus: (B, 18) CAN-bus vectors of the frame (needed with use_can_bus).
        Returns:
            (B, bev_h * bev_w, C) BEV features.
        """
        initial = self.initial_queries(mlvl_feats[0].shape[0], can_bus)
        cams = self.camera_queries(lidar2img, image_hw, padded_hw)
        return self.refine(initial, mlvl_feats, cams, prev_bev, cur2prev, has_prev)

    def camera_queries(self, lidar2img, image_hw, padded_hw, with_depth=False):
        """CameraQueries of the frame: the pillar anchors' projections into the cameras (and
        their camera depths with with_depth), fp32 under autocast, once for all layers."""
        projected = project_to_cameras(self.ref_3d, lidar2img, image_hw, padded_hw,
                                       with_depth=with_depth)
        return select_camera_queries(*projected)

    def refine(self, initial, mlvl_feats, cams, prev_bev=None, cur2prev=None, has_prev=None):
        """The layers on initial queries (B, HW, C) -> (B, HW, C); arguments as forward."""
        query_pos = self.positional_embedding()
        img_feats, spatial_shapes = self.flatten_features(mlvl_feats)
        aligned = None
        if prev_bev is not None:
            aligned = align_prev_bev(prev_bev, cur2prev, self.bev_h, self.bev_w, self.pc_range)
        query = initial
        for layer in self.layers:
            args = (query, query_pos, initial, aligned, has_prev, self.ref_2d,
                    (self.bev_h, self.bev_w), img_feats, spatial_shapes, cams)
            if self.with_cp and self.training and torch.is_grad_enabled():
                query = checkpoint(layer, *args, use_reentrant=False)
            else:
                query = layer(*args)
        return query
