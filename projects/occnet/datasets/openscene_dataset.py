"""OpenScene occupancy dataset over the infos written by tools/collect_data.py."""
import logging
import os

import numpy as np
import torch
from mmengine.dataset import BaseDataset, force_full_init
from mmengine.logging import print_log

from occnet.datasets.collect import pose_matrices
from occnet.datasets.columns import ColumnFrames
from occnet.datasets.frame_checks import CALIB_KEYS, frame_problems
from occnet.datasets.infos import VERIFY_HINT, DataError, load_infos, resolve
from occnet.datasets.metadata_cache import open_or_build
from occnet.datasets.samplers import seed_sample_draws
from occnet.datasets.temporal import (can_bus_with_deltas, link_previous, next_indices,
                                     sample_queue, scene_neighbours)
from occnet.datasets.transforms.bev_flip import mirror_matrix
from occnet.descriptions import OPENSCENE
from occnet.geometry import origins_in_frame, relative_pose
from occnet.registry import DATASETS

LABEL_KEYS = ('occ_gt_final_path', 'flow_gt_final_path', 'occ_invalid_path')


def frame_column(frames, key, shape):
    """(L, *shape) array of `key` over parsed frames: a list of dicts (stacked) or
    ColumnFrames (mapped, read-only)."""
    if not len(frames):
        return np.zeros((0,) + shape)
    if isinstance(frames, ColumnFrames):
        return frames.column(key)
    return np.stack([f[key] for f in frames])


@DATASETS.register_module()
class OpenSceneOccDataset(BaseDataset):
    """Frames of OpenScene with 8 cameras and dense occupancy labels.

    Each item is {'inputs': {'imgs': uint8 (T, N, 3, H, W)}, 'data_samples': dict} with T =
    `queue_length` in training (the current frame last, history frames of the same scene
    before it) and T = 1 in test mode. The data sample carries the current frame's metadata
    and labels plus, per queue slot: `lidar2img` (T, N, 4, 4), `cur2prev` (T, 4, 4) (slot t's
    lidar frame -> the previous slot's frame; identity where there is none; mirrored with
    RandomFlipBEV), `can_bus` (T, 18) with BEVFormer's temporal deltas
    (temporal.can_bus_with_deltas; global frame, never mirrored) and `queue_valid` (T,).
    `scene_start` is True when the current frame has no previous frame; in test mode
    `prev_token` is the previous frame's token (None at a scene start) and, with
    `with_ray_origins`, `ray_origins` (O, 3) float32 the RayIoU ray origins (`ray_origins()`).

    Metadata is parsed once per infos file and cached beside it as a column file
    (datasets/metadata_cache.py, e.g. `openscene_trainval_train.pkl.<key>.cols`), which every
    rank and dataloader worker maps from disk: a full node shares one copy in the page cache.
    Without the cache (metadata_cache=False, or a read-only folder) the frames are parsed in
    each process and serialized into one buffer (mmengine's serialize_data); per-frame links
    are int64 arrays either way.

    Args:
        ann_file: infos pickle (a list of frame dicts, contract 3).
        data_root: folder the relative paths in the infos start from.
        pipeline: per-frame transforms, ending in PackOccInputs.
        queue_length: frames per training sample, including the current one.
        queue_window: the history frames are drawn at random from this many previous frames
            of the scene (BEVFormer style); None = the queue_length - 1 nearest ones.
        with_label: samples are the labelled frames and carry the current frame's labels.
        test_mode: one frame per sample, in order, for video-mode inference.
        skip_bad_frames: training only: a frame whose image or label cannot be read is
            logged, counted and replaced by another random frame instead of stopping.
        max_prev_gap_s: frames further apart than this do not link as previous / next
            (key frames are 0.5 s apart: one dropped frame still links, two do not).
        with_ray_origins: test mode: attach each frame's `ray_origins` for RayIoU.
            engine.launch.load_config sets it on the val / test dataset whose evaluator has
            ray_iou=True; off, the samples carry none.
        ray_neighbours: test mode: each sample's `ray_origins` (O, 3) (for RayIoU) holds
            the lidar origins of up to this many linked frames before and after it.
        metadata_cache: map the parsed metadata from its column file beside `ann_file`
            (built by the first process to need it); False parses the infos in this process.
    """

    # OpenScene's description as a dict (`classes`: the evaluated names); mmengine hands it
    # to the evaluator as `dataset_meta`, which get_description turns back into OPENSCENE
    METAINFO = OPENSCENE.metainfo()
    description = OPENSCENE  # classes, grid and cameras of the frames (occnet.descriptions)
    label_key = 'occ_gt_final_path'  # a frame with a label names it here
    label_keys = LABEL_KEYS  # label paths resolved against data_root

    def read_infos(self):
        """The frame dicts of `ann_file` (contract 3)."""
        return load_infos(self.ann_file)

    def __init__(self, ann_file, data_root='', pipeline=(), queue_length=1, queue_window=None,
                 with_label=True, test_mode=False, skip_bad_frames=False, max_prev_gap_s=1.25,
                 with_ray_origins=False, ray_neighbours=2, metadata_cache=True, **kwargs):
        if kwargs.get('indices') is not None:
            raise ValueError('OpenSceneOccDataset does not take `indices`; choose frames with '
                             'tools/collect_data.py (--logs, --map-location)')
        if skip_bad_frames and test_mode:
            raise ValueError('skip_bad_frames is for training only: evaluation must see every '
                             f'frame; fix the data ({VERIFY_HINT})')
        self.queue_length = 1 if test_mode else int(queue_length)
        self.queue_window = queue_window
        self.with_label = with_label
        self.skip_bad_frames = skip_bad_frames
        self.max_prev_gap_s = max_prev_gap_s
        self.ray_neighbours = int(ray_neighbours)
        self.with_ray_origins = bool(with_ray_origins)
        self.num_skipped = 0
        self.metadata_cache = bool(metadata_cache)
        self.frames = None  # the mapped ColumnFrames, with the metadata cache
        super().__init__(ann_file=ann_file, data_root=data_root, pipeline=list(pipeline),
                         test_mode=test_mode, **kwargs)

    def settings(self):
        """What shapes the parsed frames besides the infos file (the metadata cache's key)."""
        return dict(cls=f'{type(self).__module__}.{type(self).__name__}',
                    data_root=os.fspath(self.data_root), with_label=self.with_label,
                    skip_bad_frames=self.skip_bad_frames, max_prev_gap_s=self.max_prev_gap_s,
                    cameras=list(self.description.camera_names), label_key=self.label_key,
                    label_keys=list(self.label_keys))

    def full_init(self):
        """Map the parsed metadata from its cache beside the infos (metadata_cache.py),
        building it first if needed; without the cache, mmengine's init (parse, then
        serialize)."""
        if self._fully_initialized:
            return
        frames = parsed = None
        if self.metadata_cache and os.path.isfile(self.ann_file):
            frames, parsed = open_or_build(os.fspath(self.ann_file), self.settings(),
                                           type(self), self._parse_for_cache)
        if frames is None and parsed is None:
            return super().full_init()
        if frames is None:  # parsed here, but the cache could not be written: mmengine's rest
            self.data_list = parsed[0]
            self.data_list = self.filter_data()
            if self.serialize_data:
                self.data_bytes, self.data_address = self._serialize_data()
            self._fully_initialized = True
            return
        meta = frames.meta
        if meta.get('left_out'):
            print_log(f'left out {meta["left_out"]} frames with bad metadata, e.g. '
                      f'{meta["left_out_example"]}', logger='current', level=logging.WARNING)
        if meta.get('unlabelled'):
            print_log(self._unlabelled_message(meta['unlabelled']), logger='current',
                      level=logging.WARNING)
        self.frames = frames
        self.prev_indices, self.scene_ids = frames.table('prev_indices'), frames.table('scene_ids')
        self.derive(frames)
        self._fully_initialized = True

    def _parse_for_cache(self):
        data_list = self.load_data_list()
        bad, unlabelled = self._load_report
        tables = dict(prev_indices=self.prev_indices, scene_ids=self.scene_ids)
        return data_list, tables, dict(left_out=len(bad), left_out_example=bad[0] if bad else None,
                                       unlabelled=unlabelled)

    @force_full_init
    def __len__(self):
        return len(self.frames) if self.frames is not None else super().__len__()

    @force_full_init
    def get_data_info(self, idx):
        """A fresh dict of frame `idx`'s parsed metadata (parse_frame's keys) plus
        `sample_idx`."""
        if self.frames is None:
            return super().get_data_info(idx)
        info = self.frames[idx]
        info['sample_idx'] = idx if idx >= 0 else len(self) + idx
        return info

    def _unlabelled_message(self, count):
        return (f'{self.ann_file}: {count} frames have no occupancy label and are not used as '
                f'samples (tools/collect_data.py leaves them out by default)')

    def load_data_list(self):
        """Parse the infos (with the checks of frame_checks) into frame dicts, link each
        frame to its previous one and derive the per-frame arrays (`derive`)."""
        infos = self.read_infos()
        data_list, bad, unlabelled = [], [], 0
        for i, info in enumerate(infos):
            infos[i] = None  # free the raw frame as soon as it is parsed
            problems = frame_problems(info, dataset=self.description)
            if problems:
                token = info.get('token') if isinstance(info, dict) else None
                message = f'{self.ann_file}: frame {token}: {"; ".join(problems)}'
                if not self.skip_bad_frames:
                    raise DataError(f'{message} ({VERIFY_HINT}; skip_bad_frames=True leaves '
                                    f'such frames out)')
                bad.append(message)
                continue
            if self.with_label and info.get(self.label_key) is None:
                unlabelled += 1
                continue
            data_list.append(self.parse_frame(info))
        if bad:
            print_log(f'left out {len(bad)} frames with bad metadata, e.g. {bad[0]}',
                      logger='current', level=logging.WARNING)
        if unlabelled:
            print_log(self._unlabelled_message(unlabelled), logger='current',
                      level=logging.WARNING)
        self._load_report = bad, unlabelled
        self.prev_indices, self.scene_ids = link_previous(
            [f['scene_token'] for f in data_list], [f['timestamp'] for f in data_list],
            self.max_prev_gap_s)
        self.derive(data_list)
        return data_list

    def derive(self, frames):
        """Per-frame arrays the samples need beyond one frame, from the parsed frames (a
        list of dicts or the mapped ColumnFrames): in test mode the next-frame links and
        the lidar poses (RayIoU's ray origins)."""
        if self.test_mode:
            self.next_indices = next_indices(self.prev_indices)
            self.lidar2globals = frame_column(frames, 'lidar2global', (4, 4))

    def parse_frame(self, info):
        """Keep what training needs, with paths resolved against data_root (`lidar_path` None
        when the infos name no point cloud) and the camera calibration stacked in
        order of the description's camera_names: (N, 3, 3), (N, 3), (N, 3, 3)."""
        _, ego2global, lidar2global = pose_matrices(info)
        cams = info['cams']
        frame = dict(
            token=info['token'], scene_token=info['scene_token'], log_name=info.get('log_name'),
            frame_idx=info.get('frame_idx'), timestamp=int(info['timestamp']),
            lidar2global=lidar2global, ego2global=ego2global,
            can_bus=np.asarray(info['can_bus'], dtype=np.float64),
            img_paths=[resolve(self.data_root, cams[cam]['data_path'])
                       for cam in self.description.camera_names])
        for key in CALIB_KEYS:
            frame[key] = np.stack([np.asarray(cams[cam][key], dtype=np.float64)
                                   for cam in self.description.camera_names])
        for key in self.label_keys:
            frame[key] = resolve(self.data_root, info.get(key))
        frame['lidar_path'] = resolve(self.data_root, info.get('lidar_path'))
        return frame

    def get_subset_(self, indices):
        raise NotImplementedError(
            'OpenSceneOccDataset cannot be subset: the previous-frame links are built over the '
            'whole infos; choose frames with tools/collect_data.py (--logs, --map-location)')

    def get_subset(self, indices):
        self.get_subset_(indices)

    def prepare_data(self, idx):
        seed_sample_draws(idx)  # a SeededSampler's index: draws independent of the worker
        if not self.skip_bad_frames:
            return self.build_sample(idx)
        try:
            return self.build_sample(idx)
        except DataError as err:
            self.num_skipped += 1
            print_log(f'skipped a frame ({self.num_skipped} in this process so far): {err}',
                      logger='current', level=logging.WARNING)
            return None  # BaseDataset draws another index

    def queue_indices(self, idx):
        """Dataset indices of the sample's frames (oldest first) and which are real."""
        if self.test_mode:
            return [idx], [True]
        random = self.queue_window is not None and self.queue_window > self.queue_length - 1
        return sample_queue(self.prev_indices, idx, self.queue_length, self.queue_window,
                            rng=np.random if random else None)

    def ray_origins(self, idx):
        """(O, 3) float32 RayIoU ray origins of frame `idx` in its lidar frame: its own
        lidar origin and those of up to `ray_neighbours` linked frames before and after it
        (evaluation.ray_iou.scene_ray_origins gives the same from an infos list)."""
        near = scene_neighbours(self.prev_indices, self.next_indices, idx, self.ray_neighbours)
        return origins_in_frame(self.lidar2globals[idx],
                                self.lidar2globals[near]).astype(np.float32)

    def build_sample(self, idx):
        indices, valid = self.queue_indices(idx)
        aug_seed = int(np.random.randint(2**31))  # one draw per sample: the queue agrees
        infos, frames = [], []
        for slot, frame_idx in enumerate(indices):
            info = self.get_data_info(frame_idx)
            info['with_label'] = self.with_label and slot == len(indices) - 1
            info['aug_seed'] = aug_seed
            infos.append(info)
            frames.append(self.pipeline(info))
        prev_idx = int(self.prev_indices[idx])
        if self.test_mode:
            prev_info = self.get_data_info(prev_idx) if prev_idx >= 0 else None
            prevs = [prev_info]
        else:
            prev_info = None
            prevs = [None] + [infos[t - 1] if valid[t - 1] else None
                              for t in range(1, len(infos))]
        cur2prev = np.stack([relative_pose(info['lidar2global'], prev['lidar2global'])
                             if prev is not None else np.eye(4)
                             for info, prev in zip(infos, prevs)])
        can_bus = np.stack([can_bus_with_deltas(info['can_bus'], info['ego2global'],
                                                prev['ego2global'] if prev is not None else None)
                            for info, prev in zip(infos, prevs)])
        sample = dict(frames[-1]['data_samples'])
        flip = mirror_matrix(*sample.get('bev_flip', (False, False)))
        sample['cur2prev'] = (flip @ cur2prev @ flip).astype(np.float32)
        sample['lidar2img'] = np.stack([f['data_samples']['lidar2img'] for f in frames])
        sample['can_bus'] = can_bus
        sample['queue_valid'] = np.array(valid)
        sample['scene_start'] = prev_idx < 0
        sample['prev_token'] = prev_info['token'] if prev_info is not None else None
        if self.test_mode and self.with_ray_origins:
            sample['ray_origins'] = self.ray_origins(idx)
        imgs = torch.stack([f['inputs']['imgs'] for f in frames])
        return dict(inputs=dict(imgs=imgs), data_samples=sample)
