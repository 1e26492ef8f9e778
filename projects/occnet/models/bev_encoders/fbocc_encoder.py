"""FB-OCC's view transform in the detector's `bev_encoder` slot: forward projection (LSS by
a supervised depth distribution) initialises the BEVFormer queries, and the backward
projection (BEVFormer's layers) refines them with depth-aware spatial cross-attention."""
from torch import nn

from occnet.models.bev_encoders.depth_aware_attention import anchor_depth_weights
from occnet.models.bev_encoders.encoder import BEVFormerEncoder
from occnet.models.dataset_arg import with_dataset
from occnet.registry import MODELS


@MODELS.register_module()
class FBOccEncoder(BEVFormerEncoder):
    """Forward-backward BEV encoder.

    forward projection: view_transform lifts the camera features by their predicted depth
        into a BEV map F (B, C_ctx, bev_h, bev_w), projected to embed_dims by a 1x1 linear
        layer when C_ctx differs;
    backward projection: the BEVFormer layers run on queries = learned BEV queries + F
        (+ the CAN-bus MLP), and in their spatial cross-attention each sampling point's
        weight is multiplied by the predicted probability of its pillar anchor's depth bin at
        the anchor's pixel (depth_aware_attention.anchor_depth_weights; 0 in the padding);
    output: refined queries + F (FB-OCC re-adds the forward BEV).
    Temporal self-attention over the previous BEV stays as in BEVFormerEncoder.

    Args:
        view_transform: config of the forward projection (LSSViewTransformer); its BEV size
            and pc_range must be the encoder's.
        loss_depth: config of the depth loss (DepthBinLoss) or None.
        depth_aware: weight the cross-attention by depth (False: plain BEVFormer attention
            on the forward-initialised queries, for ablation).
        relative_depth_weights: weight by each bin's probability relative to the pixel's
            most probable bin (1 at the predicted depth, 1 everywhere for a flat
            distribution) instead of FB-OCC's plain probability, which scales an untrained
            model's attention by 1 / num_bins (anchor_depth_weights(relative=True)).
        **kwargs: BEVFormerEncoder's arguments.
    Shapes:
        forward(...) as BEVFormerEncoder -> dict(bev (B, bev_h * bev_w, C), depth_logits
        (B * N, D, H, W) float32).
    """

    def __init__(self, view_transform, loss_depth=None, depth_aware=True,
                 relative_depth_weights=False, **kwargs):
        super().__init__(**kwargs)
        self.view_transform = MODELS.build(
            with_dataset(view_transform, kwargs.get('dataset', 'openscene')))
        vt = self.view_transform
        if (vt.bev_h, vt.bev_w) != (self.bev_h, self.bev_w) or \
                tuple(vt.pc_range) != self.pc_range:
            raise ValueError(f'view_transform covers a {vt.bev_h}x{vt.bev_w} BEV over '
                             f'{tuple(vt.pc_range)} but the encoder {self.bev_h}x{self.bev_w} '
                             f'over {self.pc_range}; give both the same bev_h, bev_w and '
                             'pc_range')
        context = vt.depth_net.context_out.out_channels
        self.lss_proj = (nn.Identity() if context == self.embed_dims
                         else nn.Linear(context, self.embed_dims))
        self.depth_loss = MODELS.build(loss_depth) if loss_depth else None
        self.depth_range = vt.depth_range
        self.depth_aware = depth_aware
        self.relative_depth_weights = relative_depth_weights

    def forward(self, mlvl_feats, lidar2img, image_hw, padded_hw, prev_bev=None,
                cur2prev=None, has_prev=None, can_bus=None):
        lss_map, depth_logits, probs = self.view_transform.lift(mlvl_feats, lidar2img,
                                                                image_hw, tuple(padded_hw))
        lss_bev = self.lss_proj(lss_map.flatten(2).transpose(1, 2))  # (B, HW, C) query order
        initial = self.initial_queries(lss_bev.shape[0], can_bus) + lss_bev
        cams = self.camera_queries(lidar2img, image_hw, padded_hw, with_depth=True)
        if self.depth_aware:  # padding pixels hold no depth: zero there, as in the lift
            cams = cams._replace(depth_weight=anchor_depth_weights(
                probs, cams.ref, cams.depth, self.depth_range,
                relative=self.relative_depth_weights))
        bev = self.refine(initial, mlvl_feats, cams, prev_bev, cur2prev, has_prev)
        return dict(bev=bev + lss_bev, depth_logits=depth_logits)
