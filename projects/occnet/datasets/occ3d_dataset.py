"""Occ3D-nuScenes through the same pipeline as OpenScene: the grid's (ego) frame stands in
for the lidar frame everywhere downstream."""
import numpy as np

from occnet.datasets.occ3d import load_occ3d_infos
from occnet.datasets.openscene_dataset import OpenSceneOccDataset
from occnet.descriptions import OCC3D_NUSCENES
from occnet.geometry import scene_origins
from occnet.registry import DATASETS


@DATASETS.register_module()
class Occ3DNuScenesDataset(OpenSceneOccDataset):
    """Frames of Occ3D-nuScenes: 6 cameras, labels `gts/<scene>/<token>/labels.npz`.

    Reads any infos flavour occnet.datasets.occ3d reads (the CVPR 2023 challenge's, BEVDet's,
    tools/create_occ3d_infos.py's). The Occ3D grid lives in each frame's ego frame, so the
    frames are re-expressed there before the pipeline sees them:
    - `sensor2lidar_*` become camera -> ego, so LoadMultiViewImages' `lidar2img` projects
      grid (ego) points: lidar2img @ ego2lidar;
    - `lidar2global` becomes ego2global, so `cur2prev` aligns the previous frame's grid;
    - `lidar_to_grid` (4, 4) keeps the real lidar -> ego transform: LoadPoints moves the
      points into the grid frame with it, and the ray origins start from it.
    Labels load with LoadOcc3DLabel (`occ_gt_path`). In test mode `ray_origins` are
    SparseOcc's (evaluation.sparseocc_rays) in the ego frame. Every other argument and the
    sample layout are OpenSceneOccDataset's.
    """

    METAINFO = OCC3D_NUSCENES.metainfo()
    description = OCC3D_NUSCENES
    label_key = 'occ_gt_path'
    label_keys = ('occ_gt_path',)

    def read_infos(self):
        return load_occ3d_infos(self.ann_file, self.description.camera_names)

    def parse_frame(self, info):
        frame = super().parse_frame(info)
        lidar2ego = np.asarray(info['lidar2ego'], dtype=np.float64)
        rotation, translation = lidar2ego[:3, :3], lidar2ego[:3, 3]
        frame['sensor2lidar_rotation'] = rotation @ frame['sensor2lidar_rotation']
        frame['sensor2lidar_translation'] = (frame['sensor2lidar_translation'] @ rotation.T
                                             + translation)
        frame['lidar_to_grid'] = lidar2ego
        frame['lidar_pose'] = frame['lidar2global']  # the real lidar2global (ray origins)
        frame['lidar2global'] = frame['ego2global']
        return frame

    def derive(self, frames):
        super().derive(frames)
        if self.test_mode and self.with_ray_origins:  # SparseOcc's, from the lidar poses
            self.sparseocc_origins = scene_origins([
                dict(f, lidar2ego=f['lidar_to_grid'], lidar2global=f['lidar_pose'])
                for f in (frames[i] for i in range(len(frames)))])

    def ray_origins(self, idx):
        """(O, 3) float32 SparseOcc ray origins of frame `idx` in its ego frame
        (geometry.scene_origins, as tools/eval_occ.py --dataset occ3d casts)."""
        token = self.get_data_info(idx)['token']
        return self.sparseocc_origins[token].astype(np.float32)
