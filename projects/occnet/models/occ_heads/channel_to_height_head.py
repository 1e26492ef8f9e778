"""FlashOcc's occupancy head: a BEV cell's channels become its column of voxels
(channel-to-height), with no 3D convolution."""
from torch import nn

from occnet.models.occ_heads.occupancy_loss import (OccupancyHead, OccupancyLosses, bev_upsample,
                                                   cells_to_voxels, grid_and_classes)
from occnet.registry import MODELS


@MODELS.register_module()
class ChannelToHeightHead(OccupancyHead):
    """3x3 conv + ReLU on the BEV map, then per cell Linear (2 x hidden) - Softplus - Linear
    to the logits of its whole column: Z voxels x s x s cells x classes (s = occupancy cells
    per BEV cell along x and y).

    Args:
        in_channels: BEV channels.
        bev_h, bev_w: BEV cells along x and y.
        grid_shape: (X, Y, Z) occupancy grid, X and Y the same multiple s of bev_h, bev_w;
            None: the dataset's.
        hidden_dims: channels after the conv (FlashOcc: 256).
        num_classes, use_camera_mask, class_frequencies, loss, dataset: as BEVOccHead.
    Shapes:
        forward(bev (B, bev_h * bev_w, C), rows along x) -> occ_logits (B, K, X, Y, Z).
    """

    def __init__(self, in_channels=256, bev_h=200, bev_w=200, grid_shape=None,
                 hidden_dims=256, num_classes=None, use_camera_mask=False,
                 class_frequencies=None, loss=dict(type='OccCrossEntropyLoss'),
                 dataset='openscene', init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        grid_shape, num_classes = grid_and_classes(dataset, grid_shape, num_classes)
        self.bev_h, self.bev_w, self.grid_shape = bev_h, bev_w, grid_shape
        self.upsample = bev_upsample(grid_shape, bev_h, bev_w)
        self.losses = OccupancyLosses(loss, use_camera_mask, dataset)
        self.conv = nn.Sequential(nn.Conv2d(in_channels, hidden_dims, 3, padding=1),
                                  nn.ReLU(inplace=True))
        self.num_out = self.upsample ** 2 * self.losses.logit_channels(num_classes)
        self.predictor = nn.Sequential(
            nn.Linear(hidden_dims, 2 * hidden_dims), nn.Softplus(),
            nn.Linear(2 * hidden_dims, grid_shape[2] * self.num_out))
        self.losses.init_classifier(self.predictor[-1], class_frequencies)

    def forward(self, bev):
        batch, _, channels = bev.shape
        bev_map = bev.transpose(1, 2).reshape(batch, channels, self.bev_h, self.bev_w)
        cells = self.predictor(self.conv(bev_map).permute(0, 2, 3, 1))  # (B, X, Y, Z * out)
        cells = cells.view(batch, self.bev_h, self.bev_w, self.grid_shape[2], self.num_out)
        return cells_to_voxels(cells, self.upsample, self.grid_shape)
