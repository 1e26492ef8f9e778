"""Each occupancy dataset described once: classes, free and ignore labels, grid, cameras.

A model part, transform, metric, render or tool that needs a class index, a grid size or a
camera order takes a description (or its name, resolved by `get_description`) instead of
importing a constant. The config names the dataset once (`dataset_name` in
configs/_base_/datasets/), the dataset class carries the description as its `metainfo`
(`description.metainfo()`), and mmengine hands that to the evaluator as `dataset_meta`.
Adding a dataset is one `OccDescription` here, a reader and configs.
"""
from dataclasses import asdict, dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class OccDescription:
    """What a module needs to know about an occupancy dataset.

    Attributes:
        name: registry key ('openscene', 'occ3d_nuscenes').
        class_names: name of each semantic label index, free excluded (placeholders
            included, so index i is class_names[i]).
        free_index: label of empty voxels; the classifiers predict free_index + 1 logits
            (num_classes).
        ignore_index: label of voxels no loss or metric counts.
        evaluated: the class indices the mIoU averages (the published protocol's list).
        foreground: the object classes (foreground mIoU, smear).
        palette: RGB 0-255 of every label 0..free_index (free is drawn as empty space).
        point_cloud_range: (x_min, y_min, z_min, x_max, y_max, z_max) metres of the grid in
            `grid_frame`.
        voxel_size: metres per voxel edge (cubic voxels).
        grid_shape: (X, Y, Z) voxels; dense labels are indexed [x, y, z].
        grid_frame: the frame the grid lives in: 'lidar' (OpenScene) or 'ego' (Occ3D).
        camera_names: the cameras in the order every (N_cam, ...) tensor follows.
        image_size: original (width, height) of the camera images, pixels.
        baseline_slots: the published baseline's mIoU divides by this many class slots
            (OpenScene: 16, counting unused ones as 0; the metric's `miou_16`); None where
            the dataset has no such mean.
        miou_voxels: the voxels the published mIoU counts: 'all' (OpenScene) or 'camera'
            (Occ3D: `mask_camera` only); the metric reports it as `protocol_miou`.
        ray_protocol: the RayIoU rays: 'occnet' (evaluation/ray_iou.py's fan, depth where the
            ray enters the hit voxel) or 'sparseocc' (evaluation/sparseocc_rays.py's fan,
            depth where it leaves, as SparseOcc scores Occ3D).
    """
    name: str
    class_names: Tuple[str, ...]
    free_index: int
    ignore_index: int
    evaluated: Tuple[int, ...]
    foreground: Tuple[int, ...]
    palette: Tuple[Tuple[int, int, int], ...]
    point_cloud_range: Tuple[float, ...]
    voxel_size: float
    grid_shape: Tuple[int, int, int]
    grid_frame: str
    camera_names: Tuple[str, ...]
    image_size: Tuple[int, int]
    baseline_slots: Optional[int] = None
    miou_voxels: str = 'all'
    ray_protocol: str = 'occnet'

    def __post_init__(self):
        where = f'dataset description {self.name!r}'
        if len(self.class_names) != self.free_index:
            raise ValueError(f'{where}: {len(self.class_names)} class names for labels '
                             f'0..{self.free_index - 1} (free is {self.free_index})')
        if len(self.palette) != self.num_classes:
            raise ValueError(f'{where}: {len(self.palette)} palette colours for '
                             f'{self.num_classes} labels (free included)')
        bad = [i for i in self.evaluated + self.foreground if not 0 <= i < self.free_index]
        if bad:
            raise ValueError(f'{where}: class indices {bad} outside 0..{self.free_index - 1}')
        if not set(self.foreground) <= set(self.evaluated):
            raise ValueError(f'{where}: foreground {self.foreground} not all evaluated')
        extent = [(hi - lo) / self.voxel_size for lo, hi in
                  zip(self.point_cloud_range[:3], self.point_cloud_range[3:])]
        if any(abs(e - n) > 1e-6 for e, n in zip(extent, self.grid_shape)):
            raise ValueError(f'{where}: range {self.point_cloud_range} at {self.voxel_size} m '
                             f'is {extent} voxels, not grid_shape {self.grid_shape}')
        if self.miou_voxels not in ('all', 'camera'):
            raise ValueError(f"{where}: miou_voxels {self.miou_voxels!r} is not 'all' or "
                             "'camera'")
        if self.ray_protocol not in ('occnet', 'sparseocc'):
            raise ValueError(f"{where}: ray_protocol {self.ray_protocol!r} is not 'occnet' "
                             "or 'sparseocc'")
        if self.grid_frame not in ('lidar', 'ego'):
            raise ValueError(f"{where}: grid_frame {self.grid_frame!r} is not 'lidar' or 'ego'")

    @property
    def num_classes(self):
        """Logits per voxel: every label 0..free_index."""
        return self.free_index + 1

    @property
    def evaluated_names(self):
        return tuple(self.class_names[i] for i in self.evaluated)

    def metainfo(self):
        """The description as a plain dict (a dataset's `metainfo`, mmengine's
        `dataset_meta`); `classes` holds the evaluated class names, as mm metrics expect."""
        meta = asdict(self)
        meta['classes'] = self.evaluated_names
        meta['num_classes'] = self.num_classes
        return meta


OPENSCENE = OccDescription(
    name='openscene',
    # as published (shared/OPENSCENE_FORMAT.md); slots 1-3 are unused placeholders
    class_names=('vehicle', 'place_holder1', 'place_holder2', 'place_holder3', 'czone_sign',
                 'bicycle', 'generic_object', 'pedestrian', 'traffic_cone', 'barrier',
                 'background'),
    free_index=11,
    ignore_index=255,
    evaluated=(0, 4, 5, 6, 7, 8, 9, 10),  # the 8 classes that occur in the labels
    foreground=(0, 4, 5, 6, 7, 8, 9),  # everything but background
    palette=((30, 110, 255),  # vehicle
             (0, 0, 0), (0, 0, 0), (0, 0, 0),  # unused placeholders
             (40, 200, 90),  # czone_sign
             (255, 215, 0),  # bicycle
             (150, 80, 200),  # generic_object
             (255, 60, 180),  # pedestrian
             (255, 140, 0),  # traffic_cone
             (220, 30, 30),  # barrier
             (150, 150, 150),  # background
             (255, 255, 255)),  # free
    point_cloud_range=(-50.0, -50.0, -4.0, 50.0, 50.0, 4.0),
    voxel_size=0.5,
    grid_shape=(200, 200, 16),
    grid_frame='lidar',
    camera_names=('CAM_F0', 'CAM_L0', 'CAM_L1', 'CAM_L2', 'CAM_R0', 'CAM_R1', 'CAM_R2',
                  'CAM_B0'),
    image_size=(1920, 1080),
    baseline_slots=16,
)

OCC3D_NUSCENES = OccDescription(
    name='occ3d_nuscenes',
    class_names=('others', 'barrier', 'bicycle', 'bus', 'car', 'construction_vehicle',
                 'motorcycle', 'pedestrian', 'traffic_cone', 'trailer', 'truck',
                 'driveable_surface', 'other_flat', 'sidewalk', 'terrain', 'manmade',
                 'vegetation'),
    free_index=17,
    ignore_index=255,
    evaluated=tuple(range(17)),  # Occ3D: nanmean over 0-16, others in, free out
    foreground=tuple(range(11)),  # others .. truck: the object classes
    palette=((110, 110, 110),  # others
             (255, 120, 50),  # barrier
             (255, 192, 203),  # bicycle
             (255, 255, 0),  # bus
             (0, 150, 245),  # car
             (0, 255, 255),  # construction_vehicle
             (200, 180, 0),  # motorcycle
             (255, 0, 0),  # pedestrian
             (255, 240, 150),  # traffic_cone
             (135, 60, 0),  # trailer
             (160, 32, 240),  # truck
             (255, 0, 255),  # driveable_surface
             (139, 137, 137),  # other_flat
             (75, 0, 75),  # sidewalk
             (150, 240, 80),  # terrain
             (230, 230, 250),  # manmade
             (0, 175, 0),  # vegetation
             (255, 255, 255)),  # free
    point_cloud_range=(-40.0, -40.0, -1.0, 40.0, 40.0, 5.4),
    voxel_size=0.4,
    grid_shape=(200, 200, 16),
    grid_frame='ego',
    # BEVFormer's nuScenes order
    camera_names=('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK',
                  'CAM_BACK_LEFT', 'CAM_BACK_RIGHT'),
    image_size=(1600, 900),
    miou_voxels='camera',  # the Occ3D mIoU counts camera-visible voxels only
    ray_protocol='sparseocc',  # RayIoU as SparseOcc defines it, no mask
)

DESCRIPTIONS = {d.name: d for d in (OPENSCENE, OCC3D_NUSCENES)}


def get_description(dataset):
    """The OccDescription of `dataset`: a registered name, an OccDescription, or a
    `metainfo()` dict (as mmengine passes `dataset_meta`)."""
    if isinstance(dataset, OccDescription):
        return dataset
    if isinstance(dataset, dict):
        fields = OccDescription.__dataclass_fields__
        return OccDescription(**{k: (tuple(map(tuple, v)) if k == 'palette' else
                                     tuple(v) if isinstance(v, list) else v)
                                 for k, v in dataset.items() if k in fields})
    if dataset not in DESCRIPTIONS:
        raise KeyError(f'unknown dataset {dataset!r}: the described ones are '
                       f'{sorted(DESCRIPTIONS)} (occnet/descriptions.py); set '
                       "dataset_name in the config to one of them")
    return DESCRIPTIONS[dataset]
