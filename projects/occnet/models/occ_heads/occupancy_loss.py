"""What every occupancy head shares: named classification losses and the BEV-cell to voxel
rearrangement."""
import math

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from occnet.descriptions import get_description
from occnet.models.dataset_arg import with_dataset
from occnet.registry import MODELS

SHORT_NAMES = {'OccCrossEntropyLoss': 'ce', 'OccFocalLoss': 'focal',
               'OccupiedFocalLoss': 'focal',
               'LovaszSoftmaxLoss': 'lovasz', 'SemanticScalLoss': 'sem_scal',
               'GeometryScalLoss': 'geo_scal'}


def grid_and_classes(dataset, grid_shape=None, num_classes=None):
    """(grid_shape (X, Y, Z), num_classes) of a head: the given ones, the dataset's (a name,
    an OccDescription or a metainfo dict) where they are None."""
    desc = get_description(dataset)
    return (tuple(desc.grid_shape if grid_shape is None else grid_shape),
            desc.num_classes if num_classes is None else num_classes)


def cells_to_voxels(cell_logits, upsample, grid_shape):
    """(B, bx, by, Z, s * s * K) per-BEV-cell outputs -> (B, K, X, Y, Z), X = bx * s."""
    batch, bev_h, bev_w, size_z, channels = cell_logits.shape
    s = upsample
    num_out = channels // (s * s)
    size_x, size_y, _ = grid_shape
    out = cell_logits.view(batch, bev_h, bev_w, size_z, s, s, num_out)
    # (B, bx, by, Z, sx, sy, K) -> (B, K, bx, sx, by, sy, Z) -> (B, K, X, Y, Z)
    return out.permute(0, 6, 1, 4, 2, 5, 3).reshape(batch, num_out, size_x, size_y, size_z)


def argmax_classes(occ_logits):
    """(B, K, X, Y, Z) logits -> (B, X, Y, Z) uint8 class indices (every head's predict)."""
    return occ_logits.argmax(1).to(torch.uint8)


def bev_upsample(grid_shape, bev_h, bev_w):
    """Occupancy cells per BEV cell along x and y (checked to be one integer s)."""
    size_x, size_y, _ = grid_shape
    if size_x % bev_h or size_y % bev_w or size_x // bev_h != size_y // bev_w:
        raise ValueError(f'grid {tuple(grid_shape)} must be an equal integer multiple of the '
                         f'BEV ({bev_h}, {bev_w}) along x and y')
    return size_x // bev_h


def init_logit_prior(linear, class_frequencies, class_weight):
    """Set the bias of a head's last Linear (s * s * K outputs) to log(frequency x class
    weight), normalised: the best constant prediction under the (class-weighted) loss, so
    training does not spend its first iterations learning the free-space prior.

    Args:
        linear: nn.Linear whose outputs are groups of K class logits (upsample**2 of them in
            BEVOccHead, Z * upsample**2 in ChannelToHeightHead), K innermost.
        class_frequencies: (K,) voxel frequency of each class, e.g. from dataset_stats.py.
        class_weight: (K,) tensor or None.
    """
    prior = torch.as_tensor(class_frequencies, dtype=torch.float64).clamp(min=1e-8)
    if class_weight is not None:
        prior = prior * class_weight.double()
    log_prior = (prior / prior.sum()).log().float()
    with torch.no_grad():
        linear.bias.copy_(log_prior.repeat(linear.bias.numel() // len(log_prior)))


class OccupancyLosses(nn.Module):
    """Classification losses of occupancy logits, summed by the optimiser wrapper.

    Args:
        losses: one loss config, or a list of them (e.g. focal + Lovasz + scene-class
            affinity); each config's `loss_weight` scales it.
        use_camera_mask: ignore voxels no camera sees (`mask_camera`).
        dataset: name, OccDescription or metainfo dict of the dataset; passed on to the
            loss configs that take one and name none, and its ignore_index marks the voxels
            no camera sees.
    Returns (forward): {'loss_occ': ...} for one loss, {'loss_occ_<short name>': ...} for
        several.
    """

    def __init__(self, losses, use_camera_mask=False, dataset='openscene'):
        super().__init__()
        configs = [losses] if isinstance(losses, dict) else list(losses)
        configs = [with_dataset(c, dataset) for c in configs]
        if not configs:
            raise ValueError('an occupancy head needs at least one loss config')
        self.names = (['loss_occ'] if len(configs) == 1 else
                      [f'loss_occ_{SHORT_NAMES.get(c["type"], c["type"].lower())}'
                       for c in configs])
        if len(set(self.names)) != len(self.names):
            raise ValueError(f'the same loss type twice in {[c["type"] for c in configs]}')
        self.losses = nn.ModuleList([MODELS.build(c) for c in configs])
        self.use_camera_mask = use_camera_mask
        self.ignore_index = get_description(dataset).ignore_index
        kinds = {bool(getattr(loss, 'free_as_background', False)) for loss in self.losses}
        if len(kinds) > 1:
            raise ValueError(f'losses {[c["type"] for c in configs]} disagree on free space: '
                             'OccupiedFocalLoss gives free no logit, the others treat it as '
                             'a class; use one kind')
        self.free_as_background = kinds.pop()

    def logit_channels(self, num_classes):
        """Outputs per voxel a head needs: K, or K - 1 when free has no logit."""
        return num_classes - 1 if self.free_as_background else num_classes

    def init_classifier(self, linear, class_frequencies):
        """Start a head's last Linear at its prior: prior_prob for every class when free has
        no logit (the published baseline), else the class prior (init_logit_prior) when
        class_frequencies are given."""
        if self.free_as_background:
            prior = self.losses[0].prior_prob
            with torch.no_grad():
                linear.bias.fill_(-math.log((1 - prior) / prior))
        elif class_frequencies is not None:
            init_logit_prior(linear, class_frequencies, self.class_weight)

    def predict(self, occ_logits):
        """(B, K or K - 1, X, Y, Z) logits -> (B, X, Y, Z) uint8 classes (free = K - 1).
        Without a free logit: free where the highest sigmoid probability is below the loss's
        free_threshold, else the most probable class."""
        if not self.free_as_background:
            return argmax_classes(occ_logits)
        best, classes = occ_logits.max(1)
        threshold = self.losses[0].free_threshold
        free = best.float().sigmoid() < threshold
        return torch.where(free, torch.full_like(classes, occ_logits.shape[1]),
                           classes).to(torch.uint8)

    @property
    def class_weight(self):
        """The class weights of the first loss that has them, or None."""
        return next((loss.class_weight for loss in self.losses
                     if getattr(loss, 'class_weight', None) is not None), None)

    def forward(self, occ_logits, voxel_semantics, mask_camera=None):
        """occ_logits (B, K, X, Y, Z); voxel_semantics (B, X, Y, Z) integer labels (the
        dataset's ignore_index left out); mask_camera optional (B, X, Y, Z) bool, True where
        a camera sees the voxel."""
        target = voxel_semantics.long()
        if self.use_camera_mask:
            if mask_camera is None:
                raise ValueError('use_camera_mask=True but the samples carry no mask_camera; '
                                 'the infos need occ_invalid_path entries')
            target = torch.where(mask_camera.bool(), target,
                                 torch.full_like(target, self.ignore_index))
        logits = occ_logits.float()
        return {name: loss(logits, target) for name, loss in zip(self.names, self.losses)}


class OccupancyHead(BaseModule):
    """Base of the occupancy heads: `loss` and `predict` through the head's OccupancyLosses
    (`self.losses`, which the head builds)."""

    def loss(self, occ_logits, voxel_semantics, mask_camera=None):
        """Classification losses (OccupancyLosses): occ_logits (B, K, X, Y, Z),
        voxel_semantics (B, X, Y, Z), mask_camera optional (B, X, Y, Z) bool."""
        return self.losses(occ_logits, voxel_semantics, mask_camera)

    def predict(self, occ_logits):
        """(B, X, Y, Z) uint8 classes from the logits (OccupancyLosses.predict)."""
        return self.losses.predict(occ_logits)
