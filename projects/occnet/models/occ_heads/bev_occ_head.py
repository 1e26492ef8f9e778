"""The OpenScene baseline occupancy head: BEV channels -> height -> per-voxel class logits."""
import torch.nn as nn
from mmengine.model import BaseModule

from occnet.constants import GRID_SHAPE, NUM_CLASSES
from occnet.models.occ_heads.occupancy_loss import (OccupancyLosses, argmax_classes,
                                                   bev_upsample, cells_to_voxels,
                                                   init_logit_prior)
from occnet.registry import MODELS


@MODELS.register_module()
class BEVOccHead(BaseModule):
    """Per BEV cell, a Linear lifts C channels to Z voxel features of `hidden_dims` channels;
    an MLP maps each voxel feature to the class logits of the s x s occupancy voxels it
    covers (s = occupancy cells per BEV cell along x and y; s = 1, the published baseline,
    when the BEV matches the grid).

    Args:
        in_channels: BEV channels C.
        bev_h, bev_w: BEV cells along x and y.
        grid_shape: (X, Y, Z) occupancy grid; X and Y must be the same multiple s of bev_h
            and bev_w.
        hidden_dims: channels per voxel after lifting.
        num_classes: logits per voxel (classes 0..10 and free).
        activation: 'softplus' (as the published baseline) or 'relu' (cheaper on CPU).
        bev_convs: 3x3 conv + ReLU layers on the BEV map before lifting (0 in the baseline);
            they let a cell see its neighbours, e.g. whether it lies behind an object.
        use_camera_mask: ignore voxels no camera sees (`mask_camera`) in the loss.
        class_frequencies: optional voxel frequency of each class (num_classes,), e.g. from
            tools/dataset_stats.py; the logits then start at the best constant prediction
            under the (class-weighted) loss, log(frequency * class weight), instead of
            uniform, so training does not spend its first iterations learning the free-space
            prior.
        loss: config of the classification loss, or a list of them (OccupancyLosses).
    """

    def __init__(self, in_channels=256, bev_h=200, bev_w=200, grid_shape=GRID_SHAPE,
                 hidden_dims=128, num_classes=NUM_CLASSES, activation='softplus', bev_convs=0,
                 use_camera_mask=False, class_frequencies=None, loss=dict(type='OccFocalLoss'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.bev_h, self.bev_w, self.grid_shape = bev_h, bev_w, tuple(grid_shape)
        self.upsample = bev_upsample(grid_shape, bev_h, bev_w)
        size_z = grid_shape[2]
        self.hidden_dims, self.num_classes = hidden_dims, num_classes
        activations = dict(softplus=nn.Softplus, relu=nn.ReLU)
        if activation not in activations:
            raise ValueError(f'activation {activation!r} not in {sorted(activations)}')
        self.bev_convs = nn.Sequential(*[
            layer for _ in range(bev_convs)
            for layer in (nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU(True))])
        self.lift = nn.Linear(in_channels, size_z * hidden_dims)
        self.classifier = nn.Sequential(
            nn.Linear(hidden_dims, hidden_dims * 2), activations[activation](),
            nn.Linear(hidden_dims * 2, self.upsample**2 * num_classes))
        self.losses = OccupancyLosses(loss, use_camera_mask)
        if class_frequencies is not None:
            init_logit_prior(self.classifier[-1], class_frequencies, self.losses.class_weight,
                             self.upsample)

    def forward(self, bev):
        """bev (B, bev_h * bev_w, C) -> occ_logits (B, num_classes, X, Y, Z)."""
        batch, _, channels = bev.shape
        if len(self.bev_convs):
            bev_map = bev.transpose(1, 2).reshape(batch, channels, self.bev_h, self.bev_w)
            bev = bev + self.bev_convs(bev_map).flatten(2).transpose(1, 2)
        voxels = self.lift(bev).view(batch, self.bev_h, self.bev_w, self.grid_shape[2],
                                     self.hidden_dims)
        return cells_to_voxels(self.classifier(voxels), self.upsample, self.grid_shape)

    def loss(self, occ_logits, voxel_semantics, mask_camera=None):
        """Classification losses (OccupancyLosses): occ_logits (B, K, X, Y, Z),
        voxel_semantics (B, X, Y, Z), mask_camera optional (B, X, Y, Z) bool."""
        return self.losses(occ_logits, voxel_semantics, mask_camera)

    predict = staticmethod(argmax_classes)
