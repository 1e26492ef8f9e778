"""OpenScene occupancy dataset over the infos written by tools/collect_data.py."""
import numpy as np
import torch
from mmengine.dataset import BaseDataset

from occnet.constants import CAMERA_NAMES, CLASS_NAMES
from occnet.datasets.infos import DataError, load_pickle, resolve
from occnet.geometry import pose_matrix, relative_pose
from occnet.registry import DATASETS

LABEL_KEYS = ('occ_gt_final_path', 'flow_gt_final_path', 'occ_invalid_path')


def lidar2global_of(info):
    """(4, 4) float64 lidar -> global pose of a frame dict."""
    if info.get('lidar2global') is not None:
        return np.asarray(info['lidar2global'], dtype=np.float64)
    ego2global = pose_matrix(info['ego2global_translation'], info['ego2global_rotation'])
    lidar2ego = pose_matrix(info['lidar2ego_translation'], info['lidar2ego_rotation'])
    return ego2global @ lidar2ego


@DATASETS.register_module()
class OpenSceneOccDataset(BaseDataset):
    """Frames of OpenScene with 8 cameras and dense occupancy labels.

    Each item is {'inputs': {'imgs': uint8 (T, N, 3, H, W)}, 'data_samples': dict} with T =
    `queue_length` in training (the current frame last, history frames of the same scene
    before it) and T = 1 in test mode. The data sample carries the current frame's metadata
    and labels plus, per queue slot, `lidar2img` (T, N, 4, 4), `cur2prev` (T, 4, 4) (slot t's
    lidar frame -> the previous frame's) and `queue_valid` (T,); in test mode `prev_token` is
    the token of the previous frame of the scene in this dataset (None at a scene start).

    Args:
        ann_file: infos pickle (a list of frame dicts, contract 3).
        data_root: folder the relative paths in the infos start from.
        pipeline: per-frame transforms, ending in PackOccInputs.
        queue_length: frames per training sample, including the current one.
        with_label: load occupancy labels of the current frame.
        test_mode: one frame per sample, in order, for video-mode inference.
    """

    METAINFO = dict(classes=CLASS_NAMES)

    def __init__(self, ann_file, data_root='', pipeline=(), queue_length=1, with_label=True,
                 test_mode=False, **kwargs):
        self.queue_length = 1 if test_mode else int(queue_length)
        self.with_label = with_label
        super().__init__(ann_file=ann_file, data_root=data_root, pipeline=list(pipeline),
                         test_mode=test_mode, **kwargs)

    def load_data_list(self):
        infos = load_pickle(self.ann_file)
        if not isinstance(infos, list):
            raise DataError(f'{self.ann_file} holds a {type(infos).__name__}, expected a list '
                            f'of frame dicts; write it with tools/collect_data.py')
        token_to_idx = {info['token']: i for i, info in enumerate(infos)}
        data_list = []
        for idx, info in enumerate(infos):
            prev_idx = token_to_idx.get(info.get('sample_prev'), -1)
            if prev_idx >= 0 and infos[prev_idx]['scene_token'] != info['scene_token']:
                prev_idx = -1
            data_list.append(self.parse_frame(info, idx, prev_idx))
        return data_list

    def parse_frame(self, info, idx, prev_idx):
        """Keep what training needs, with paths resolved against data_root."""
        missing = [cam for cam in CAMERA_NAMES if cam not in info['cams']]
        if missing:
            raise DataError(f'frame {info["token"]} in {self.ann_file} lacks cameras '
                            f'{missing}')
        frame = dict(
            sample_idx=idx, prev_idx=prev_idx, token=info['token'],
            scene_token=info['scene_token'], log_name=info.get('log_name'),
            frame_idx=info.get('frame_idx'), timestamp=info.get('timestamp'),
            lidar2global=lidar2global_of(info),
            cams={cam: {k: info['cams'][cam][k] for k in
                        ('sensor2lidar_rotation', 'sensor2lidar_translation', 'cam_intrinsic')}
                  for cam in CAMERA_NAMES},
            img_paths=[resolve(self.data_root, info['cams'][cam]['data_path'])
                       for cam in CAMERA_NAMES])
        for key in LABEL_KEYS:
            frame[key] = resolve(self.data_root, info.get(key))
        return frame

    def full_init(self):
        super().full_init()
        # compact per-frame arrays for samplers, kept outside the serialized dicts
        infos = [self.get_data_info(i) for i in range(len(self))]
        self.prev_indices = np.array([info['prev_idx'] for info in infos], dtype=np.int64)
        _, self.scene_ids = np.unique([info['scene_token'] for info in infos],
                                      return_inverse=True)

    def queue_indices(self, idx):
        """Dataset indices of the queue (oldest first) and which slots are real frames;
        a scene start is padded by repeating its first frame."""
        indices, valid = [idx], [True]
        while len(indices) < self.queue_length:
            prev = int(self.prev_indices[indices[0]])
            if prev < 0:
                indices.insert(0, indices[0])
                valid.insert(0, False)
            else:
                indices.insert(0, prev)
                valid.insert(0, True)
        return indices, valid

    def prepare_data(self, idx):
        indices, valid = self.queue_indices(idx)
        frames, poses = [], []
        for slot, frame_idx in enumerate(indices):
            info = self.get_data_info(frame_idx)
            poses.append(info['lidar2global'])
            info['with_label'] = self.with_label and slot == len(indices) - 1
            frames.append(self.pipeline(info))
        prev_idx = int(self.prev_indices[idx])
        prev_info = self.get_data_info(prev_idx) if prev_idx >= 0 else None
        if self.test_mode and prev_info is not None:
            cur2prev = [relative_pose(poses[0], prev_info['lidar2global'])]
        else:
            cur2prev = [np.eye(4)] + [relative_pose(poses[t], poses[t - 1]) if valid[t - 1]
                                      else np.eye(4) for t in range(1, len(poses))]
        sample = dict(frames[-1]['data_samples'])
        sample['lidar2img'] = np.stack([f['data_samples']['lidar2img'] for f in frames])
        sample['cur2prev'] = np.stack(cur2prev).astype(np.float32)
        sample['queue_valid'] = np.array(valid)
        sample['prev_token'] = prev_info['token'] if prev_info is not None else None
        imgs = torch.stack([f['inputs']['imgs'] for f in frames])
        return dict(inputs=dict(imgs=imgs), data_samples=sample)
