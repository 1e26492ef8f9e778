"""Synthetic lidar sweeps: one spinning lidar at the lidar frame's origin, ray-cast against the
same parts and ground as the cameras and the labels; written as nuPlan MergedPointCloud PCD
(OpenScene) or nuScenes LIDAR_TOP `.pcd.bin` (Occ3D-nuScenes).

Each return is the first surface its beam meets within MAX_RANGE: the road, the terrain, a
sidewalk, a structure or an object. Fields: x y z (metres, lidar frame), intensity (0-255: by
surface kind on the ground and sidewalk tops, high on striped barriers and signs, from the
paint's brightness on other parts), ring (beam index, 0 = lowest), lidar_info (0: the only
lidar). nuscenes_bin_bytes keeps the first five columns as nuScenes' `.pcd.bin` does.
"""
import numpy as np

from occnet.datasets.synthetic.layout import SURFACES, surface_kind
from occnet.datasets.synthetic.parts import MATERIAL
from occnet.datasets.synthetic.raycast import FACE_UP, first_box_hits, ground_hits, to_box_frame

NUM_BEAMS = 32
ELEVATION_RANGE_DEG = (-30.0, 10.0)  # lowest and highest beam
AZIMUTH_STEP_DEG = 0.4
MAX_RANGE = 80.0  # metres
PCD_FIELDS = ('x', 'y', 'z', 'intensity', 'ring', 'lidar_info')
NUSCENES_FIELDS = PCD_FIELDS[:5]  # x y z intensity ring index
_SURFACE_INTENSITY = {'asphalt': 12, 'lane_line': 70, 'centre_line': 65, 'bike_lane': 15,
                      'parking': 14, 'curb': 30, 'sidewalk': 28, 'plaza': 25, 'lot': 12,
                      'grass': 35, 'crosswalk': 70}
SURFACE_INTENSITY = np.array([_SURFACE_INTENSITY[name] for name in SURFACES], dtype=np.float32)
RETROREFLECTIVE_INTENSITY = 150.0  # striped barriers and signs


class LidarScanner:
    """Beam directions of the sweep (NUM_BEAMS rows x azimuth columns), computed once."""

    def __init__(self):
        self.elevations = np.deg2rad(np.linspace(*ELEVATION_RANGE_DEG, NUM_BEAMS))
        self.elevation_step = self.elevations[1] - self.elevations[0]
        self.azimuth_step = np.deg2rad(AZIMUTH_STEP_DEG)
        self.num_columns = int(round(360.0 / AZIMUTH_STEP_DEG))
        azimuths = np.arange(self.num_columns) * self.azimuth_step
        el, az = np.meshgrid(self.elevations, azimuths, indexing='ij')
        self.directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az),
                                    np.sin(el)], axis=-1).reshape(-1, 3)
        self.origin = np.zeros(3)

    def rects(self, boxes):
        """Beam/column rectangles (N, 4) row_lo, row_hi, col_lo, col_hi (ends exclusive, columns
        to be taken modulo num_columns) holding each box as seen from the lidar."""
        local = to_box_frame(np.broadcast_to(self.origin, (len(boxes), 3)), boxes)
        half = boxes[:, 3:6] / 2
        outside = np.clip(np.abs(local[:, :2]) - half[:, :2], 0, None)
        near = np.hypot(outside[:, 0], outside[:, 1])  # footprint's nearest point, horizontally
        cos, sin = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
        signs = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float64)
        corner_l, corner_w = signs[:, 0] * half[:, :1], signs[:, 1] * half[:, 1:2]
        corner_x = boxes[:, :1] + cos * corner_l - sin * corner_w - self.origin[0]
        corner_y = boxes[:, 1:2] + sin * corner_l + cos * corner_w - self.origin[1]
        far = np.hypot(corner_x, corner_y).max(axis=1)
        centre_az = np.arctan2(boxes[:, 1] - self.origin[1], boxes[:, 0] - self.origin[0])
        relative = (np.arctan2(corner_y, corner_x) - centre_az[:, None] + np.pi) % (2 * np.pi) \
            - np.pi
        top = boxes[:, 2] + half[:, 2] - self.origin[2]
        bottom = boxes[:, 2] - half[:, 2] - self.origin[2]
        el_hi = np.arctan2(top, np.where(top > 0, near, far))
        el_lo = np.arctan2(bottom, np.where(bottom < 0, near, far))
        rows = np.stack([np.ceil((el_lo - self.elevations[0]) / self.elevation_step - 1e-9),
                         np.floor((el_hi - self.elevations[0]) / self.elevation_step + 1e-9) + 1],
                        axis=1)
        cols = np.stack([np.ceil((centre_az + relative.min(1)) / self.azimuth_step - 1e-9),
                         np.floor((centre_az + relative.max(1)) / self.azimuth_step + 1e-9) + 1],
                        axis=1)
        rects = np.concatenate([np.clip(rows, 0, NUM_BEAMS), cols], axis=1).astype(np.int64)
        around = np.all(np.abs(local[:, :2]) <= half[:, :2], axis=1)
        rects[around, 2:] = [0, self.num_columns]
        rects[:, 3] = np.minimum(rects[:, 3], rects[:, 2] + self.num_columns)
        rects[near > MAX_RANGE] = 0
        return rects

    def scan(self, parts, layout, lidar2global):
        """One sweep.

        Args:
            parts: Parts of the frame in its lidar frame.
            layout: RoadLayout of the log.
            lidar2global: (4, 4) pose of the frame's lidar.
        Returns:
            (N, 6) float32 x, y, z, intensity, ring, lidar_info, ordered by ring then azimuth.
        """
        lidar2global = np.asarray(lidar2global, dtype=np.float64)
        t_ground = ground_hits(self.origin, self.directions, lidar2global, layout, MAX_RANGE)
        t_box, box, face = first_box_hits(self.origin, self.directions, self.num_columns,
                                       parts.boxes, self.rects(parts.boxes), wrap_cols=True)
        on_box = t_box < t_ground
        t = np.where(on_box, t_box, t_ground)
        ray = np.flatnonzero(t <= MAX_RANGE)
        points = self.origin + t[ray, None] * self.directions[ray]
        part = np.where(on_box[ray], box[ray], -1)
        material = np.full(len(ray), -1, dtype=np.int64)
        intensity = np.zeros(len(ray), dtype=np.float32)
        on_part = np.flatnonzero(part >= 0)
        material[on_part] = parts.material[part[on_part]]
        brightness = parts.colour[part[on_part]].astype(np.float32).mean(axis=1) / 255.0
        intensity[on_part] = np.where(material[on_part] == MATERIAL['stripes'],
                                      RETROREFLECTIVE_INTENSITY, 8.0 + 70.0 * brightness)
        # the ground and the tops of sidewalks: by surface (markings are bright)
        surface = np.flatnonzero((part < 0) | ((material == MATERIAL['paving'])
                                               & (face[ray] == FACE_UP)))
        global_xy = points[surface, :2] @ lidar2global[:2, :2].T + lidar2global[:2, 3]
        intensity[surface] = SURFACE_INTENSITY[surface_kind(layout,
                                                            *layout.road_coordinates(global_xy))]
        out = np.zeros((len(ray), len(PCD_FIELDS)), dtype=np.float32)
        out[:, :3] = points
        out[:, 3] = intensity
        out[:, 4] = ray // self.num_columns
        return out


def pcd_bytes(points):
    """Binary PCD v0.7 with the nuPlan MergedPointCloud fields of (N, 6) float32 points."""
    points = np.ascontiguousarray(points, dtype='<f4').reshape(-1, len(PCD_FIELDS))
    header = ('# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n'
              f'FIELDS {" ".join(PCD_FIELDS)}\nSIZE 4 4 4 4 4 4\nTYPE F F F F F F\n'
              f'COUNT 1 1 1 1 1 1\nWIDTH {len(points)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\n'
              f'POINTS {len(points)}\nDATA binary\n')
    return header.encode('ascii') + points.tobytes()


def nuscenes_bin_bytes(points):
    """nuScenes LIDAR_TOP `.pcd.bin` bytes of a sweep: (N, 5) little-endian float32 rows x, y,
    z (metres, lidar frame), intensity (0-255), ring index, from LidarScanner.scan's (N, 6)."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, len(PCD_FIELDS))
    return np.ascontiguousarray(points[:, :len(NUSCENES_FIELDS)], dtype='<f4').tobytes()
