"""Forward projection (Lift-Splat-Shoot with a camera-aware depth net, as BEVDepth and
FlashOcc): each camera feature pixel predicts a depth distribution and context features,
and their outer product along the pixel's ray is pooled into the BEV cells it crosses."""
import torch
from torch import nn

from occnet.descriptions import get_description
from occnet.models.view_transforms.camera_params import camera_parameters
from occnet.models.view_transforms.depth_bins import num_bins
from occnet.models.view_transforms.frustum import frustum_points
from occnet.ops.voxel_pooling import cached_pooling_plan, voxel_pool
from occnet.registry import MODELS


@MODELS.register_module()
class LSSViewTransformer(nn.Module):
    """Camera features -> BEV map by predicted depth.

    Args:
        depth_net: config of the depth network (e.g. CameraAwareDepthNet); its num_bins must
            match depth_range.
        depth_range: (d_min, d_max, step) metres of the depth bins.
        bev_h, bev_w: BEV cells along lidar x and y.
        pc_range: (x_min, y_min, z_min, x_max, y_max, z_max) metres; frustum points outside
            it are dropped, those inside summed over height into their BEV cell. None: the
            dataset's point_cloud_range.
        feat_level: which neck level to lift.
        pooling: 'sum' (LSS, BEVDet, FlashOcc: a cell holds the probability-weighted sum of
            the features lifted into it) or 'mass_mean' (that sum divided by 1 + the cell's
            probability mass m: a cell near the cameras, where thousands of frustum points
            land, is scaled to about the mean of its features, while a cell with m << 1 stays
            near 0, as in the sum; an occnet option, docs/model_zoo.md).
        dataset: name, OccDescription or metainfo dict of the dataset.
    Shapes:
        forward(mlvl_feats [(B, N, C, H, W)], lidar2img (B, N, 4, 4), image_hw (B, 2) the
        unpadded input size, padded_hw (H_pad, W_pad)) -> bev (B, C_ctx, bev_h, bev_w) (rows
        along x, as BEVFormer's BEV map) and depth_logits (B * N, D, H, W) float32.
        lift(same inputs) -> (bev, depth_logits, depth_probs (B * N, D, H, W) float32, the
        distribution it lifted with: depth_probabilities(depth_logits)), for callers that
        reuse it (FBOccEncoder's depth weights).
        Feature pixels whose centre lies in the padding lift nothing.
    """

    def __init__(self, depth_net, depth_range, bev_h, bev_w, pc_range=None, feat_level=0,
                 pooling='sum', dataset='openscene'):
        super().__init__()
        if pc_range is None:
            pc_range = get_description(dataset).point_cloud_range
        if pooling not in ('sum', 'mass_mean'):
            raise ValueError(f"pooling must be 'sum' or 'mass_mean', got {pooling!r}")
        self.pooling = pooling
        self.depth_net = MODELS.build(depth_net)
        self.depth_range = tuple(depth_range)
        if self.depth_net.num_bins != num_bins(depth_range):
            raise ValueError(f'depth_net.num_bins={self.depth_net.num_bins} but depth_range '
                             f'{tuple(depth_range)} has {num_bins(depth_range)} bins; make '
                             'them agree')
        self.bev_h, self.bev_w, self.pc_range = bev_h, bev_w, tuple(pc_range)
        self.feat_level = feat_level

    def forward(self, mlvl_feats, lidar2img, image_hw, padded_hw):
        bev, depth_logits, _ = self.lift(mlvl_feats, lidar2img, image_hw, padded_hw)
        return bev, depth_logits

    def lift(self, mlvl_feats, lidar2img, image_hw, padded_hw):
        feats = mlvl_feats[self.feat_level]  # (B, N, C, H, W)
        batch, cams, _, height, width = feats.shape
        stride = padded_hw[0] / height
        camera = camera_parameters(lidar2img, tuple(padded_hw))  # (B, N, 16) fp32
        depth_logits, context = self.depth_net(feats.flatten(0, 1), camera.flatten(0, 1))
        depth_logits = depth_logits.float()
        depth_probs = self.depth_probabilities(depth_logits, image_hw, padded_hw)
        plan = cached_pooling_plan(
            (lidar2img, (height, width), stride, self.depth_range),
            lambda: frustum_points(lidar2img, (height, width), stride, self.depth_range),
            self.pc_range, (self.bev_h, self.bev_w, 1))
        context = context.view(batch, cams, -1, height, width).permute(0, 1, 3, 4, 2)
        if self.pooling == 'mass_mean':  # a channel of ones pools each cell's mass
            context = torch.cat([context, torch.ones_like(context[..., :1])], -1)
        bev = voxel_pool(depth_probs.view(batch, cams, -1, height, width), context,
                         plan)  # (B, Y, X, C)
        if self.pooling == 'mass_mean':
            bev = bev[..., :-1] / (1 + bev[..., -1:])
        return bev.permute(0, 3, 2, 1).to(context.dtype), depth_logits, depth_probs

    def depth_probabilities(self, depth_logits, image_hw, padded_hw):
        """(B * N, D, H, W) softmax of depth_logits over the bins, 0 at feature pixels whose
        centre lies in the padding (inside_image); image_hw (B, 2), padded_hw (H_pad, W_pad)."""
        height, width = depth_logits.shape[-2:]
        inside = self.inside_image(image_hw, (height, width), padded_hw[0] / height)
        cams = depth_logits.shape[0] // inside.shape[0]
        return depth_logits.softmax(1) * inside.repeat_interleave(cams, 0)[:, None]

    @staticmethod
    def inside_image(image_hw, feat_shape, stride):
        """(B, H, W) float: 1 where the feature pixel's centre lies inside the unpadded
        image of each sample, 0 in the padding."""
        rows = (torch.arange(feat_shape[0], device=image_hw.device) + 0.5) * stride
        cols = (torch.arange(feat_shape[1], device=image_hw.device) + 0.5) * stride
        return ((rows[None, :, None] < image_hw[:, 0, None, None])
                & (cols[None, None, :] < image_hw[:, 1, None, None])).float()
