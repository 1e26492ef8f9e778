"""BEVFormer-style camera-only occupancy model."""
import numpy as np
import torch
from mmengine.model import BaseModel

from occnet.models.dataset_arg import with_dataset
from occnet.models.view_transforms.depth_bins import expected_depth
from occnet.registry import MODELS


def _stack(values, device, dtype=torch.float32):
    """Stack per-sample numpy/list metadata into one tensor on `device`."""
    return torch.as_tensor(np.stack([np.asarray(v) for v in values]), dtype=dtype,
                           device=device)


def _gathered(data_samples, key, device, combine, needed_by):
    """`combine` (torch.cat or torch.stack) of every sample's `key` tensor, on `device`;
    needed_by = (what needs it, the fix) names both in the error when a sample lacks it."""
    if not all(key in s for s in data_samples):
        who, fix = needed_by
        raise ValueError(f'{who} needs {key} in the samples: {fix}')
    return combine([s[key] for s in data_samples]).to(device)


def without_history_motion(can_bus, prev_bev, has_prev):
    """(B, 18) CAN-bus vectors with the motion since the previous frame ([0:3] translation,
    [17] heading change) zeroed where the frame runs without a previous BEV, as BEVFormer
    does (the dataset measures it against the previous frame even when that frame's BEV is
    not at hand, e.g. at test time without video mode)."""
    if prev_bev is not None and has_prev is None:
        return can_bus
    keep = torch.zeros(can_bus.shape[0], dtype=torch.bool, device=can_bus.device)
    if prev_bev is not None:
        keep = has_prev.to(torch.bool)
    motion = torch.zeros_like(can_bus, dtype=torch.bool)
    motion[:, [0, 1, 2, 17]] = True
    return torch.where(motion & ~keep[:, None], torch.zeros_like(can_bus), can_bus)


@MODELS.register_module()
class BEVFormerOcc(BaseModel):
    """Image backbone + neck -> BEV encoder (temporal + spatial attention) -> occupancy head.

    Training consumes a queue of T frames per sample (oldest first); the T - 1 history frames
    run without gradient to build the previous BEV. Testing runs one frame per sample and
    carries the BEV of the previous frame of the same scene (video mode).

    Args:
        img_backbone, img_neck, bev_encoder, occ_head: configs of the parts.
        flow_head: optional config of a flow head (FlowHead); training then needs
            `voxel_flow` in the samples (LoadOccupancyLabel(with_flow=True)).
        data_preprocessor: config of the `OccDataPreprocessor`.
        video_test_mode: carry the previous BEV across test frames of a scene.
        compile_modules: names of parts to compile with `torch.compile` (opt-in), e.g.
            ('bev_encoder', 'occ_head'). They are compiled in place (`nn.Module.compile`), so
            checkpoints keep their keys. The first iterations are slower while it compiles.
        compile_options: keyword arguments for torch.compile (mode, dynamic, backend, ...).
        channels_last: keep every 2D convolution's weights (image backbone, neck, depth net,
            BEV encoder, heads) and the images in channels-last memory format; their outputs
            then stay channels-last (faster convolutions on recent GPUs under AMP, and with
            bf16 on CPUs with AMX: docs/benchmarks.md; the same function).
        dataset: name, OccDescription or metainfo dict of the dataset (grid, classes,
            cameras); set as `dataset` on the bev_encoder, occ_head, flow_head and
            img_seg_head configs whose class takes one and that name none, so a config
            names it once.
        img_seg_head: optional config of an auxiliary per-pixel semantic head on the neck
            features (ImageSemanticHead), for a joint depth-semantic pretraining; training
            then needs `semantic_maps` in the samples
            (DepthMapsFromPoints(with_semantics=True)). It predicts nothing at test time.
    Data samples (dicts, one per sample) carry: `token`, `prev_token` (or None),
    `lidar2img` (T, N, 4, 4), `img_shape` (H, W), `cur2prev` (T, 4, 4) from each frame's lidar
    to the previous frame's, `queue_valid` (T,) bool, `can_bus` (T, 18) (read when the encoder
    has use_can_bus), and in training `voxel_semantics`
    (X, Y, Z) uint8 (optionally `mask_camera`, and `voxel_flow` (X, Y, Z, 2) for the flow
    head).
    """

    def __init__(self, img_backbone, img_neck, bev_encoder, occ_head, flow_head=None,
                 data_preprocessor=None, video_test_mode=True, compile_modules=(),
                 compile_options=None, channels_last=False, dataset='openscene',
                 img_seg_head=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.img_backbone = MODELS.build(img_backbone)
        self.img_neck = MODELS.build(img_neck)
        self.bev_encoder = MODELS.build(with_dataset(bev_encoder, dataset))
        self.occ_head = MODELS.build(with_dataset(occ_head, dataset))
        self.flow_head = (MODELS.build(with_dataset(flow_head, dataset))
                          if flow_head is not None else None)
        self.img_seg_head = (MODELS.build(with_dataset(img_seg_head, dataset))
                             if img_seg_head is not None else None)
        self.video_test_mode = video_test_mode
        self.channels_last = channels_last
        if channels_last:  # Conv3d weights keep their layout (channels_last is 4D only)
            for module in self.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.to(memory_format=torch.channels_last)
        for name in compile_modules:
            part = getattr(self, name, None)
            if not isinstance(part, torch.nn.Module):
                raise ValueError(f"compile_modules: the model has no part '{name}'; choose "
                                 'from img_backbone, img_neck, bev_encoder, occ_head, '
                                 'flow_head, img_seg_head')
            part.compile(**(compile_options or {}))
        self._prev_frame = None  # {'token': str, 'bev': (1, HW, C)} in video test mode

    def extract_img_feats(self, imgs):
        """(B, N, 3, H, W) -> list of (B, N, C, h_l, w_l) neck features."""
        batch, num_cams = imgs.shape[:2]
        imgs = imgs.flatten(0, 1)
        if self.channels_last:
            imgs = imgs.contiguous(memory_format=torch.channels_last)
        feats = self.img_neck(self.img_backbone(imgs))
        return [f.view(batch, num_cams, *f.shape[1:]) for f in feats]

    def encode_frame(self, imgs, data_samples, t, prev_bev=None, has_prev=None):
        """BEV of queue slot t and what a head that looks at the images needs.

        imgs (B, N, 3, H_pad, W_pad) -> (bev (B, HW, C), context dict: mlvl_feats,
        lidar2img (B, N, 4, 4), image_hw (B, 2), padded_hw)."""
        device = imgs.device
        context = dict(mlvl_feats=self.extract_img_feats(imgs),
                       lidar2img=_stack([s['lidar2img'][t] for s in data_samples], device),
                       image_hw=_stack([s['img_shape'] for s in data_samples], device),
                       padded_hw=imgs.shape[-2:])
        cur2prev = _stack([s['cur2prev'][t] for s in data_samples], device)
        can_bus = None
        if getattr(self.bev_encoder, 'use_can_bus', False):
            if not all('can_bus' in s for s in data_samples):
                raise ValueError("the encoder's use_can_bus needs 'can_bus' (T, 18) in the "
                                 'samples, as OpenSceneOccDataset adds it; or set '
                                 'model.bev_encoder.use_can_bus=False')
            can_bus = without_history_motion(
                _stack([s['can_bus'][t] for s in data_samples], device), prev_bev, has_prev)
        bev = self.bev_encoder(context['mlvl_feats'], context['lidar2img'],
                               context['image_hw'], context['padded_hw'], prev_bev, cur2prev,
                               has_prev, can_bus)
        if isinstance(bev, dict):  # an encoder with explicit depth (LSSBEVEncoder)
            context['depth_logits'] = bev['depth_logits']
            bev = bev['bev']
        return bev, context

    def occ_logits(self, bev, context):
        """(B, K, X, Y, Z) logits of the occupancy head (given the images if it uses them)."""
        if getattr(self.occ_head, 'uses_images', False):
            return self.occ_head(bev, **context)
        return self.occ_head(bev)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        imgs = inputs['imgs']  # (B, T, N, 3, H, W)
        if mode == 'loss':
            return self.loss(imgs, data_samples)
        if mode == 'predict':
            return self.predict(imgs, data_samples)
        if mode == 'tensor':
            return self.occ_logits(*self.encode_frame(imgs[:, -1], data_samples, -1))
        raise ValueError(f'unknown mode {mode!r}; expected loss, predict or tensor')

    def parse_losses(self, losses):
        """BaseModel.parse_losses, keeping the loss terms (detached) as `last_loss_terms`:
        what NonFiniteLossHook reports when their sum is not finite."""
        self.last_loss_terms = {name: value.detach() for name, value in losses.items()
                                if isinstance(value, torch.Tensor)}
        return super().parse_losses(losses)

    def history_bev(self, imgs, data_samples):
        """Run the T - 1 history frames without gradient; returns (prev_bev, has_prev) for
        the last slot, or (None, None) when T == 1."""
        num_frames = imgs.shape[1]
        if num_frames == 1:
            return None, None
        valid = _stack([s['queue_valid'] for s in data_samples], imgs.device, torch.bool)  # (B, T)
        prev_bev = None
        was_training = self.training
        self.eval()
        with torch.no_grad():
            for t in range(num_frames - 1):
                has_prev = valid[:, t] & valid[:, t - 1] if t > 0 else None
                prev_bev, _ = self.encode_frame(imgs[:, t], data_samples, t,
                                                prev_bev if t > 0 else None, has_prev)
        self.train(was_training)
        return prev_bev, valid[:, -2] & valid[:, -1]

    def loss(self, imgs, data_samples):
        prev_bev, has_prev = self.history_bev(imgs, data_samples)
        bev, context = self.encode_frame(imgs[:, -1], data_samples, -1, prev_bev, has_prev)
        occ_logits = self.occ_logits(bev, context)
        labels = torch.stack([s['voxel_semantics'] for s in data_samples]).to(imgs.device)
        masks = None
        if all('mask_camera' in s for s in data_samples):
            masks = torch.stack([s['mask_camera'] for s in data_samples]).to(imgs.device)
        losses = self.occ_head.loss(occ_logits, labels, masks)
        if 'depth_logits' in context and getattr(self.bev_encoder, 'depth_loss', None):
            depth_maps = _gathered(data_samples, 'depth_maps', imgs.device, torch.cat, (
                "the encoder's depth loss", "add dict(type='LoadPoints') and "
                "dict(type='DepthMapsFromPoints', stride=...) to the pipeline, or set "
                'model.bev_encoder.loss_depth=None'))
            losses['loss_depth'] = self.bev_encoder.depth_loss(context['depth_logits'],
                                                               depth_maps)
        if self.flow_head is not None:
            flows = _gathered(data_samples, 'voxel_flow', imgs.device, torch.stack, (
                'the flow head', "use dict(type='LoadOccupancyLabel', with_flow=True)"))
            losses.update(self.flow_head.loss(self.flow_head(bev), flows, labels, masks))
        if self.img_seg_head is not None:
            semantic_maps = _gathered(data_samples, 'semantic_maps', imgs.device, torch.cat, (
                'the image semantic head', "use dict(type='DepthMapsFromPoints', stride=..., "
                'with_semantics=True) after LoadOccupancyLabel and LoadPoints, or set '
                'model.img_seg_head=None'))
            losses['loss_img_seg'] = self.img_seg_head.loss(
                self.img_seg_head(context['mlvl_feats']), semantic_maps)
        return losses

    def outputs(self, bev, context, data_samples):
        """Per-sample result dicts: `token`, `occ_pred` (X, Y, Z) uint8, with a flow head
        `flow_pred` (X, Y, Z, 2) float32, and with a depth-predicting encoder `depth_pred`
        (N, H, W) float32 metres (the expected depth of each feature pixel), on CPU."""
        occ = self.occ_head.predict(self.occ_logits(bev, context)).cpu()
        results = [dict(token=s['token'], occ_pred=o) for s, o in zip(data_samples, occ)]
        if 'depth_logits' in context:
            depth = expected_depth(context['depth_logits'].softmax(1),
                                   self.bev_encoder.depth_range).cpu()
            for result, frame_depth in zip(results, depth.view(len(results), -1,
                                                               *depth.shape[-2:])):
                result['depth_pred'] = frame_depth
        if self.flow_head is not None:
            for result, flow in zip(results, self.flow_head.predict(self.flow_head(bev)).cpu()):
                result['flow_pred'] = flow
        return results

    def predict(self, imgs, data_samples):
        """Returns one dict per sample: `token`, `occ_pred` (X, Y, Z) uint8 on CPU."""
        if not self.video_test_mode:
            prev_bev, has_prev = self.history_bev(imgs, data_samples)
            bev, context = self.encode_frame(imgs[:, -1], data_samples, -1, prev_bev, has_prev)
            return self.outputs(bev, context, data_samples)
        results = []
        for i, sample in enumerate(data_samples):  # video mode runs frames one at a time
            frame = imgs[i:i + 1, -1]
            prev = self._prev_frame
            has_prev = prev is not None and sample.get('prev_token') == prev['token']
            bev, context = self.encode_frame(
                frame, [sample], -1, prev['bev'] if has_prev else None,
                torch.ones(1, dtype=torch.bool, device=frame.device) if has_prev else None)
            self._prev_frame = dict(token=sample['token'], bev=bev.detach())
            results += self.outputs(bev, context, [sample])
        return results
