"""FlashOcc's BEV encoder in the detector's `bev_encoder` slot: forward projection (LSS) by
a supervised depth distribution, then a 2D ResNet-FPN on the BEV map."""
from torch import nn

from occnet.models.dataset_arg import with_dataset
from occnet.registry import MODELS


@MODELS.register_module()
class LSSBEVEncoder(nn.Module):
    """Camera features -> BEV queries' layout, with the depth it predicted.

    Args:
        view_transform: config of the view transform (LSSViewTransformer); its bev_h, bev_w
            are the BEV's.
        bev_backbone: config of the 2D BEV encoder (BEVResNetFPN), its in_channels the view
            transform's context channels.
        loss_depth: config of the depth loss (DepthBinLoss) or None (no depth supervision).
        dataset: the dataset description (occnet.descriptions) the view transform's grid
            defaults to.
    Shapes:
        forward(mlvl_feats, lidar2img (B, N, 4, 4), image_hw, padded_hw, *temporal) ->
        dict(bev (B, bev_h * bev_w, C) in BEVFormer's query order (index = ix * bev_w + iy),
        depth_logits (B * N, D, H, W) float32). No temporal fusion: prev_bev, cur2prev, has_prev and
        can_bus are accepted and unused (use queue_length=1).
    """

    def __init__(self, view_transform, bev_backbone, loss_depth=None, dataset='openscene'):
        super().__init__()
        self.view_transform = MODELS.build(with_dataset(view_transform, dataset))
        self.bev_backbone = MODELS.build(bev_backbone)
        self.depth_loss = MODELS.build(loss_depth) if loss_depth else None
        self.bev_h, self.bev_w = self.view_transform.bev_h, self.view_transform.bev_w
        self.depth_range = self.view_transform.depth_range

    def forward(self, mlvl_feats, lidar2img, image_hw, padded_hw, prev_bev=None,
                cur2prev=None, has_prev=None, can_bus=None):
        bev_map, depth_logits = self.view_transform(mlvl_feats, lidar2img, image_hw,
                                                    tuple(padded_hw))
        bev_map = self.bev_backbone(bev_map)  # (B, C, bev_h, bev_w), rows along x
        return dict(bev=bev_map.flatten(2).transpose(1, 2), depth_logits=depth_logits)
