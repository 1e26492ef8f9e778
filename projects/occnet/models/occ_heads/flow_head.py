"""Per-voxel flow (vx, vy) from the BEV, trained on occupied foreground voxels."""
import torch
import torch.nn as nn
from mmengine.model import BaseModule

from occnet.descriptions import get_description
from occnet.models.occ_heads.occupancy_loss import bev_upsample, cells_to_voxels
from occnet.registry import MODELS


@MODELS.register_module()
class FlowHead(BaseModule):
    """Per BEV cell, a Linear lifts C channels to Z voxel features; an MLP maps each to the
    (vx, vy) of the s x s voxels it covers, in m/s in the lidar frame.

    The loss (FlowL1Loss) counts the voxels whose label is one of the dataset's foreground
    classes (the objects that move), optionally only those a camera sees.

    Args:
        in_channels: BEV channels C.
        bev_h, bev_w: BEV cells along x and y.
        grid_shape: (X, Y, Z) occupancy grid; None: the dataset's.
        hidden_dims: channels per voxel.
        use_camera_mask: count only voxels a camera sees.
        loss: config of the flow loss.
        dataset: name, OccDescription or metainfo dict of the dataset.
    """

    def __init__(self, in_channels=256, bev_h=200, bev_w=200, grid_shape=None,
                 hidden_dims=32, use_camera_mask=False, loss=dict(type='FlowL1Loss'),
                 dataset='openscene', init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        desc = get_description(dataset)
        grid_shape = tuple(desc.grid_shape if grid_shape is None else grid_shape)
        self.bev_h, self.bev_w, self.grid_shape = bev_h, bev_w, grid_shape
        self.register_buffer('foreground', torch.tensor(desc.foreground, dtype=torch.long),
                             persistent=False)  # (F,) class indices
        self.upsample = bev_upsample(grid_shape, bev_h, bev_w)
        self.hidden_dims = hidden_dims
        self.lift = nn.Linear(in_channels, grid_shape[2] * hidden_dims)
        self.regressor = nn.Sequential(
            nn.Linear(hidden_dims, hidden_dims), nn.ReLU(True),
            nn.Linear(hidden_dims, self.upsample**2 * 2))
        self.use_camera_mask = use_camera_mask
        self.loss_flow = MODELS.build(loss)

    def forward(self, bev):
        """bev (B, bev_h * bev_w, C) -> flow (B, 2, X, Y, Z) m/s."""
        voxels = self.lift(bev).view(bev.shape[0], self.bev_h, self.bev_w, self.grid_shape[2],
                                     self.hidden_dims)
        return cells_to_voxels(self.regressor(voxels), self.upsample, self.grid_shape)

    def loss(self, flow_pred, voxel_flow, voxel_semantics, mask_camera=None):
        """flow_pred (B, 2, X, Y, Z); voxel_flow (B, X, Y, Z, 2) m/s; voxel_semantics
        (B, X, Y, Z); mask_camera optional (B, X, Y, Z) bool -> {'loss_flow': scalar}."""
        mask = torch.isin(voxel_semantics.long(), self.foreground)
        if self.use_camera_mask:
            if mask_camera is None:
                raise ValueError('use_camera_mask=True but the samples carry no mask_camera')
            mask = mask & mask_camera.bool()
        return dict(loss_flow=self.loss_flow(flow_pred, voxel_flow, mask))

    @staticmethod
    def predict(flow_pred):
        """(B, 2, X, Y, Z) -> (B, X, Y, Z, 2) float32."""
        return flow_pred.float().movedim(1, -1)
