"""The OpenScene baseline occupancy head: BEV channels -> height -> per-voxel class logits."""
import torch.nn as nn

from occnet.models.occ_heads.occupancy_loss import (OccupancyHead, OccupancyLosses, bev_upsample,
                                                   cells_to_voxels, grid_and_classes)
from occnet.registry import MODELS


@MODELS.register_module()
class BEVOccHead(OccupancyHead):
    """Per BEV cell, a Linear lifts C channels to Z voxel features of `hidden_dims` channels;
    an MLP maps each voxel feature to the class logits of the s x s occupancy voxels it
    covers (s = occupancy cells per BEV cell along x and y; s = 1, the published baseline,
    when the BEV matches the grid).

    Args:
        in_channels: BEV channels C.
        bev_h, bev_w: BEV cells along x and y.
        grid_shape: (X, Y, Z) occupancy grid; X and Y must be the same multiple s of bev_h
            and bev_w. None: the dataset's.
        hidden_dims: channels per voxel after lifting.
        num_classes: the dataset's labels, free included (None: its num_classes, 12 for
            OpenScene); the head outputs that many logits per voxel, or one fewer with a
            loss that gives free no logit (OccupiedFocalLoss).
        classifier: 'openscene', the published baseline's branch: `num_fcs` x (Linear,
            LayerNorm, ReLU) at hidden_dims, then a Linear to the logits; or 'mlp' (occnet
            before issue 13, OccNet's predictor): Linear to 2 x hidden_dims, `activation`,
            Linear to the logits.
        num_fcs: hidden layers of the 'openscene' classifier (2 in the baseline).
        activation: of the 'mlp' classifier, 'softplus' (as OccNet) or 'relu' (cheaper on
            CPU).
        bev_convs: 3x3 conv + ReLU layers on the BEV map before lifting (0 in the baseline);
            they let a cell see its neighbours, e.g. whether it lies behind an object.
        use_camera_mask: ignore voxels no camera sees (`mask_camera`) in the loss.
        class_frequencies: optional voxel frequency of each class (num_classes,), e.g. from
            tools/dataset_stats.py; the logits then start at the best constant prediction
            under the (class-weighted) loss, log(frequency * class weight), instead of
            uniform, so training does not spend its first iterations learning the free-space
            prior.
        loss: config of the classification loss, or a list of them (OccupancyLosses).
        dataset: name, OccDescription or metainfo dict of the dataset (also handed to the
            losses).
    """

    def __init__(self, in_channels=256, bev_h=200, bev_w=200, grid_shape=None,
                 hidden_dims=128, num_classes=None, classifier='openscene', num_fcs=2,
                 activation='softplus', bev_convs=0, use_camera_mask=False,
                 class_frequencies=None, loss=dict(type='OccFocalLoss'), dataset='openscene',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        grid_shape, num_classes = grid_and_classes(dataset, grid_shape, num_classes)
        self.bev_h, self.bev_w, self.grid_shape = bev_h, bev_w, grid_shape
        self.upsample = bev_upsample(grid_shape, bev_h, bev_w)
        self.losses = OccupancyLosses(loss, use_camera_mask, dataset)
        size_z = grid_shape[2]
        self.hidden_dims, self.num_classes = hidden_dims, num_classes
        activations = dict(softplus=nn.Softplus, relu=nn.ReLU)
        if activation not in activations:
            raise ValueError(f'activation {activation!r} not in {sorted(activations)}')
        if classifier not in ('openscene', 'mlp'):
            raise ValueError(f"classifier {classifier!r} is unknown; choose 'openscene' or 'mlp'")
        self.bev_convs = nn.Sequential(*[
            layer for _ in range(bev_convs)
            for layer in (nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU(True))])
        self.lift = nn.Linear(in_channels, size_z * hidden_dims)
        num_out = self.upsample**2 * self.losses.logit_channels(num_classes)
        if classifier == 'openscene':
            layers = [layer for _ in range(num_fcs)
                      for layer in (nn.Linear(hidden_dims, hidden_dims),
                                    nn.LayerNorm(hidden_dims), nn.ReLU(True))]
            self.classifier = nn.Sequential(*layers, nn.Linear(hidden_dims, num_out))
        else:
            self.classifier = nn.Sequential(
                nn.Linear(hidden_dims, hidden_dims * 2), activations[activation](),
                nn.Linear(hidden_dims * 2, num_out))
        self.losses.init_classifier(self.classifier[-1], class_frequencies)

    def forward(self, bev):
        """bev (B, bev_h * bev_w, C) -> occ_logits (B, num_classes, X, Y, Z)."""
        batch, _, channels = bev.shape
        if len(self.bev_convs):
            bev_map = bev.transpose(1, 2).reshape(batch, channels, self.bev_h, self.bev_w)
            bev = bev + self.bev_convs(bev_map).flatten(2).transpose(1, 2)
        voxels = self.lift(bev).view(batch, self.bev_h, self.bev_w, self.grid_shape[2],
                                     self.hidden_dims)
        return cells_to_voxels(self.classifier(voxels), self.upsample, self.grid_shape)
