"""The BEVFormer-Occ head: channel-to-height, two 3D convolutions, an MLP predictor."""
import torch.nn as nn

from occnet.models.occ_heads.occupancy_loss import (OccupancyHead, OccupancyLosses, bev_upsample,
                                                   cells_to_voxels, grid_and_classes)
from occnet.registry import MODELS


@MODELS.register_module()
class BEVFormerOccHead(OccupancyHead):
    """BEV map -> 1x1 conv to Z x voxel_dims channels (channel-to-height) -> voxel features
    (B, voxel_dims, Z, bev_h, bev_w) -> `num_convs` 3x3x3 Conv3d + BN + ReLU layers that mix
    neighbouring voxels in 3D -> per-voxel MLP predictor to the class logits of the s x s
    occupancy voxels each feature covers (s = grid cells per BEV cell, 1 for a 200x200 BEV).

    Args:
        in_channels: BEV channels C.
        bev_h, bev_w: BEV cells along x and y.
        grid_shape: (X, Y, Z) occupancy grid, an integer multiple s of the BEV along x and y;
            None: the dataset's.
        voxel_dims: channels per voxel after channel-to-height.
        num_convs: Conv3d layers (2 in BEVFormer-Occ).
        num_classes: the dataset's labels, free included (None: its num_classes); the head
            outputs that many logits per voxel, or one fewer with a loss that gives free no
            logit (OccupiedFocalLoss).
        use_camera_mask: ignore voxels no camera sees in the loss.
        class_frequencies: optional (num_classes,) voxel frequencies: start the logits at
            the class prior (occupancy_loss.init_logit_prior).
        loss: loss config or list of configs (OccupancyLosses).
        dataset: name, OccDescription or metainfo dict of the dataset (also handed to the
            losses).
    """

    def __init__(self, in_channels=256, bev_h=200, bev_w=200, grid_shape=None,
                 voxel_dims=32, num_convs=2, num_classes=None, use_camera_mask=False,
                 class_frequencies=None, loss=dict(type='OccFocalLoss'), dataset='openscene',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        grid_shape, num_classes = grid_and_classes(dataset, grid_shape, num_classes)
        self.bev_h, self.bev_w, self.grid_shape = bev_h, bev_w, grid_shape
        self.upsample = bev_upsample(grid_shape, bev_h, bev_w)
        self.losses = OccupancyLosses(loss, use_camera_mask, dataset)
        self.voxel_dims, self.num_classes = voxel_dims, num_classes
        self.channel_to_height = nn.Conv2d(in_channels, grid_shape[2] * voxel_dims, 1)
        self.convs = nn.Sequential(*[
            layer for _ in range(num_convs)
            for layer in (nn.Conv3d(voxel_dims, voxel_dims, 3, padding=1, bias=False),
                          nn.BatchNorm3d(voxel_dims), nn.ReLU(True))])
        self.predictor = nn.Sequential(
            nn.Linear(voxel_dims, voxel_dims * 2), nn.Softplus(),
            nn.Linear(voxel_dims * 2,
                      self.upsample**2 * self.losses.logit_channels(num_classes)))
        self.losses.init_classifier(self.predictor[-1], class_frequencies)

    def forward(self, bev):
        """bev (B, bev_h * bev_w, C) -> occ_logits (B, num_classes, X, Y, Z)."""
        batch, _, channels = bev.shape
        size_z = self.grid_shape[2]
        bev_map = bev.transpose(1, 2).reshape(batch, channels, self.bev_h, self.bev_w)
        voxels = self.channel_to_height(bev_map).view(batch, size_z, self.voxel_dims,
                                                      self.bev_h, self.bev_w)
        voxels = self.convs(voxels.transpose(1, 2))  # (B, voxel_dims, Z, bev_h, bev_w)
        cells = voxels.permute(0, 3, 4, 2, 1)  # (B, bev_h, bev_w, Z, voxel_dims)
        return cells_to_voxels(self.predictor(cells), self.upsample, self.grid_shape)
