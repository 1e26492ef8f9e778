"""Camera images, depth buffers and camera visibility of the synthetic voxel scenes.

Numpy + cv2 only. The ground is the analytic plane z = GROUND_Z (the top of the ground voxel
layer); objects are the exposed faces of the labelled foreground voxels, filled as quads far to
near (painter's algorithm). Everything projects through occnet.geometry.lidar2img_matrix of the
same `cams` entries that go into the metadata.
"""
from typing import NamedTuple

import cv2
import numpy as np

from occnet.constants import (BACKGROUND_INDEX, CAMERA_NAMES, FREE_INDEX, GRID_SHAPE,
                              POINT_CLOUD_RANGE, VOXEL_SIZE)
from occnet.datasets.synthetic.rig import GROUND_Z
from occnet.datasets.synthetic.voxelize import GROUND_LAYER
from occnet.datasets.synthetic.world import SURFACES, surface_kind
from occnet.geometry import lidar2img_matrix, project_points, voxel_centers

NEAR_PLANE = 0.1  # metres; faces with a corner closer to the camera plane are skipped
VISIBILITY_TOLERANCE = 0.5  # metres a voxel test point may lie behind the drawn surface
FAR_GROUND = 2000.0  # metres; farther ground pixels are drawn as horizon
HAZE_DISTANCE = 350.0  # metres; colours fade towards the horizon as 1 - exp(-dist / this)
SHADE_AMBIENT, SHADE_SUN = 0.55, 0.45
_SUBPIXEL_BITS = 4  # fixed-point bits of the quad corners handed to cv2

SKY_HORIZON = np.array([200.0, 220.0, 238.0])
SKY_ZENITH = np.array([135.0, 175.0, 228.0])
# RGB base colour and texture amplitude of each ground surface, in SURFACES order.
_SURFACE_STYLE = {
    'asphalt': ((88, 90, 94), 7.0),
    'lane_line': ((220, 220, 214), 5.0),
    'centre_line': ((222, 184, 60), 5.0),
    'bike_lane': ((108, 94, 92), 7.0),
    'parking': ((104, 104, 106), 7.0),
    'curb': ((176, 174, 168), 5.0),
    'sidewalk': ((160, 157, 150), 6.0),
    'offroad': ((140, 132, 118), 12.0),
    'crosswalk': ((225, 225, 220), 5.0),
}
SURFACE_COLOURS = np.array([_SURFACE_STYLE[name][0] for name in SURFACES], dtype=np.float32)
SURFACE_TEXTURE = np.array([_SURFACE_STYLE[name][1] for name in SURFACES], dtype=np.float32)

# Unit-cube face of each direction (+x, -x, +y, -y, +z, -z): outward normal and its 4 corners in
# cyclic order, in voxel units from the voxel's minimum corner.
FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
FACE_CORNERS = np.array([
    [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]],
    [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]],
    [[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]],
    [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]],
    [[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
    [[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]],
], dtype=np.float64)


class RenderedFrame(NamedTuple):
    """Renders of one frame, cameras in CAMERA_NAMES order."""
    images: np.ndarray  # (N_cam, H, W, 3) uint8 RGB
    depth: np.ndarray  # (N_cam, H, W) float32 metres along the optical axis, inf for sky
    instance: np.ndarray  # (N_cam, H, W) int32 object index drawn at the pixel, -1 for none
    visible: np.ndarray  # (X*Y*Z,) bool per voxel, index1d order: seen by at least one camera


def exposed_faces(labels):
    """Faces of foreground voxels (class < background) whose neighbour is free or off the grid.

    Args:
        labels: (X, Y, Z) dense labels.
    Returns:
        xyz: (F, 3) int voxel coordinates; direction: (F,) int index into FACE_NORMALS.
    """
    solid = labels < BACKGROUND_INDEX
    free = np.pad(labels == FREE_INDEX, 1, constant_values=True)
    size_x, size_y, size_z = labels.shape
    xyz, direction = [], []
    for k, (dx, dy, dz) in enumerate(FACE_NORMALS):
        neighbour_free = free[1 + dx:1 + dx + size_x, 1 + dy:1 + dy + size_y,
                              1 + dz:1 + dz + size_z]
        found = np.argwhere(solid & neighbour_free)
        xyz.append(found)
        direction.append(np.full(len(found), k))
    return np.concatenate(xyz), np.concatenate(direction)


def _hash01(ix, iy, salt):
    """Deterministic pseudo-random values in [0, 1) of integer cell coordinates (arrays)."""
    h = (ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
         ^ iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F) ^ np.uint64(salt))
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return (h >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


def ground_colours(global_xy, road_origin, crosswalk_offset):
    """RGB float colours (M, 3) of ground points (M, 2) given in global metres: road surface
    and markings from the road layout, plus a fine and a coarse texture fixed to global x, y."""
    kind = surface_kind(global_xy[:, 0] - road_origin[0], global_xy[:, 1] - road_origin[1],
                        crosswalk_offset)
    fine = np.floor(global_xy / 0.2).astype(np.int64)
    coarse = np.floor(global_xy / 2.0).astype(np.int64)
    noise = (0.7 * _hash01(fine[:, 0], fine[:, 1], 1) + 0.3 * _hash01(coarse[:, 0], coarse[:, 1], 2)
             - 0.5) * 2.0
    return SURFACE_COLOURS[kind] + (SURFACE_TEXTURE[kind] * noise)[:, None]


def _haze(colours, distance):
    weight = (1.0 - np.exp(-distance / HAZE_DISTANCE))[..., None]
    return colours * (1.0 - weight) + SKY_HORIZON * weight


class RigRenderer:
    """Renders the cameras of one vehicle. What depends only on the rig (pixel rays, the ground
    under each pixel in the lidar frame, the sky, each voxel's projection) is computed once."""

    def __init__(self, cams, image_size):
        """Args: cams: dict CAM_* -> cams entry of the metadata; image_size: (width, height)."""
        self.width, self.height = int(image_size[0]), int(image_size[1])
        self.lidar2img = [lidar2img_matrix(cams[name]) for name in CAMERA_NAMES]
        self.centres = [np.asarray(cams[name]['sensor2lidar_translation'], dtype=np.float64)
                        for name in CAMERA_NAMES]
        u, v = np.meshgrid(np.arange(self.width), np.arange(self.height))
        pixels = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3).astype(np.float64)
        self.sky, self.ground = [], []
        for name, centre in zip(CAMERA_NAMES, self.centres):
            # Rays with unit depth: a point at depth t along pixel p is centre + t * ray[p].
            rays = pixels @ np.linalg.inv(cams[name]['cam_intrinsic']).T
            rays = rays @ np.asarray(cams[name]['sensor2lidar_rotation']).T
            elevation = rays[:, 2] / np.linalg.norm(rays, axis=1)
            blend = np.clip(elevation / 0.5, 0, 1)[:, None] ** 0.8
            self.sky.append((SKY_HORIZON * (1 - blend) + SKY_ZENITH * blend).astype(np.float32))
            with np.errstate(divide='ignore'):
                depth = np.where(rays[:, 2] < 0, (GROUND_Z - centre[2]) / rays[:, 2], np.inf)
            depth[depth >= FAR_GROUND] = np.inf
            pixel = np.flatnonzero(np.isfinite(depth))
            hit = centre[:2] + depth[pixel, None] * rays[pixel, :2]
            self.ground.append({'pixel': pixel, 'xy': hit, 'depth': depth.astype(np.float32),
                                'distance': np.linalg.norm(hit - centre[:2], axis=1)})
        self.voxel_views = self._project_voxels()

    def _project_voxels(self):
        """Per camera the voxels whose test point projects inside the image: index1d, pixel,
        depth. Test point: the voxel centre, or for the ground layer its top face centre;
        voxels under the ground layer are never visible."""
        size_x, size_y, _ = GRID_SHAPE
        points = voxel_centers().transpose(2, 1, 0, 3).reshape(-1, 3)
        layer = np.arange(len(points)) // (size_x * size_y)
        points[layer == GROUND_LAYER, 2] = GROUND_Z
        candidates = np.flatnonzero(layer >= GROUND_LAYER)
        views = []
        for lidar2img in self.lidar2img:
            uv, depth = project_points(points[candidates], lidar2img)
            col, row = np.round(uv[:, 0]).astype(np.int64), np.round(uv[:, 1]).astype(np.int64)
            inside = ((depth > NEAR_PLANE) & (col >= 0) & (col < self.width) & (row >= 0)
                      & (row < self.height))
            views.append({'index': candidates[inside].astype(np.int32),
                          'pixel': (row * self.width + col)[inside].astype(np.int32),
                          'depth': depth[inside].astype(np.float32)})
        return views

    def render(self, labels, instance_ids, object_colours, lidar2global, world):
        """Render one frame.

        Args:
            labels: (X, Y, Z) uint8 dense labels of the frame.
            instance_ids: (X, Y, Z) int object index per voxel, -1 for none.
            object_colours: (N_obj, 3) uint8 RGB base colour per object index.
            lidar2global: (4, 4) pose of the frame's lidar.
            world: the log's World (road layout and sun direction).
        Returns:
            RenderedFrame.
        """
        lidar2global = np.asarray(lidar2global, dtype=np.float64)
        xyz, direction = exposed_faces(labels)
        corners = (np.asarray(POINT_CLOUD_RANGE[:3])
                   + (xyz[:, None, :] + FACE_CORNERS[direction]) * VOXEL_SIZE)  # (F, 4, 3)
        face_centres = corners.mean(axis=1)
        normals = FACE_NORMALS[direction].astype(np.float64)
        sunlight = np.clip((normals @ lidar2global[:3, :3].T) @ world.sun_direction, 0, None)
        face_instance = instance_ids[xyz[:, 0], xyz[:, 1], xyz[:, 2]]
        face_colours = (np.asarray(object_colours, dtype=np.float64)[face_instance]
                        * (SHADE_AMBIENT + SHADE_SUN * sunlight)[:, None])

        ground_xy = [g['xy'] for g in self.ground]
        flat = np.concatenate(ground_xy) @ lidar2global[:2, :2].T + (
            lidar2global[:2, 2] * GROUND_Z + lidar2global[:2, 3])
        colours = np.split(ground_colours(flat, world.road_origin, world.crosswalk_offset),
                           np.cumsum([len(xy) for xy in ground_xy])[:-1])

        num_pixels = self.width * self.height
        shape = (len(CAMERA_NAMES), self.height, self.width)
        images = np.empty((*shape, 3), dtype=np.uint8)
        depths = np.empty(shape, dtype=np.float32)
        instances = np.empty(shape, dtype=np.int32)
        visible = np.zeros(int(np.prod(GRID_SHAPE)), dtype=bool)
        for cam in range(len(CAMERA_NAMES)):
            ground = self.ground[cam]
            image = self.sky[cam].copy()
            image[ground['pixel']] = _haze(colours[cam], ground['distance'])
            face_index, face_depth = self._draw_faces(cam, corners, face_centres, normals)
            drawn = np.flatnonzero(face_index >= 0)
            faces = face_index[drawn]
            distance = np.linalg.norm(face_centres[faces] - self.centres[cam], axis=1)
            image[drawn] = _haze(face_colours[faces], distance)
            object_depth = np.full(num_pixels, np.inf, dtype=np.float32)
            object_depth[drawn] = face_depth[drawn]
            instance = np.full(num_pixels, -1, dtype=np.int32)
            instance[drawn] = face_instance[faces]

            view = self.voxel_views[cam]
            seen = view['depth'] <= object_depth[view['pixel']] + VISIBILITY_TOLERANCE
            visible[view['index'][seen]] = True
            image = np.clip(np.round(image), 0, 255).astype(np.uint8)
            images[cam] = image.reshape(shape[1:] + (3,))
            depths[cam] = np.where(instance >= 0, object_depth, ground['depth']).reshape(shape[1:])
            instances[cam] = instance.reshape(shape[1:])
        return RenderedFrame(images, depths, instances, visible)

    def _draw_faces(self, cam, corners, face_centres, normals):
        """Fill the camera-facing quads of one camera far to near.

        Returns:
            face_index: (H*W,) int64 face drawn at each pixel, -1 where none.
            face_depth: (H*W,) float32 depth of that face's centre.
        """
        buffer = np.full((self.height, self.width, 2), -1.0, dtype=np.float32)
        lidar2img = self.lidar2img[cam]
        to_camera = self.centres[cam] - face_centres
        facing = (to_camera * normals).sum(axis=1) > 0
        projected = corners @ lidar2img[:3, :3].T + lidar2img[:3, 3]  # (F, 4, 3)
        corner_depth = projected[..., 2]
        keep = facing & (corner_depth.min(axis=1) > NEAR_PLANE)
        uv = projected[..., :2] / np.maximum(corner_depth, NEAR_PLANE)[..., None]
        keep &= ((uv[..., 0].max(axis=1) >= -0.5) & (uv[..., 0].min(axis=1) <= self.width - 0.5)
                 & (uv[..., 1].max(axis=1) >= -0.5) & (uv[..., 1].min(axis=1) <= self.height - 0.5))
        faces = np.flatnonzero(keep)
        faces = faces[np.argsort(-np.linalg.norm(to_camera[faces], axis=1), kind='stable')]
        centre_depth = face_centres @ lidar2img[2, :3] + lidar2img[2, 3]
        points = np.round(uv * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        for face in faces:
            cv2.fillConvexPoly(buffer, points[face], (float(centre_depth[face]), float(face)),
                               lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        return buffer[..., 1].reshape(-1).astype(np.int64), buffer[..., 0].reshape(-1)
