"""Camera images, depth buffers and camera visibility of the synthetic scenes.

Numpy + cv2-free ray casting: every pixel's ray (through the stored calibration, the same
lidar2img that goes into the metadata) is cast against the ground (road plane and terrain) and
the frame's parts (parts.py); the nearest hit is shaded by its material, the sun and a distance
haze. A voxel of the dataset's grid (which may live in another frame than the lidar's, e.g.
Occ3D's ego frame) counts as seen by a camera when its centre or its top face centre lies no
more than VISIBILITY_TOLERANCE behind the nearest surface at the pixel it projects to.
"""
from typing import NamedTuple

import numpy as np

from occnet.datasets.synthetic.layout import surface_kind
from occnet.datasets.synthetic.parts import MATERIAL, box_corners
from occnet.datasets.synthetic.raycast import (FACE_NORMALS, FACE_UP, first_box_hits, ground_hits,
                                               to_box_frame)
from occnet.datasets.synthetic.rig import GROUND_Z
from occnet.datasets.synthetic.shapes import GLASS, SURFACE_COLOURS, SURFACE_TEXTURE
from occnet.datasets.synthetic.voxelize import ground_layer
from occnet.descriptions import OPENSCENE
from occnet.geometry import lidar2img_matrix, voxel_centers

NEAR_PLANE = 0.1  # metres; surfaces nearer than this to a camera's image plane are not drawn
VISIBILITY_TOLERANCE = 0.5  # metres a voxel test point may lie behind the drawn surface
FAR_GROUND = 2000.0  # metres; farther ground pixels are drawn as horizon
HAZE_DISTANCE = 350.0  # metres; colours fade towards the horizon as 1 - exp(-dist / this)
SHADE_AMBIENT, SHADE_SUN = 0.55, 0.45
WINDOW_COLOUR = np.array([62.0, 72.0, 88.0])
STRIPE_COLOUR = np.array([232.0, 232.0, 228.0])

SKY_HORIZON = np.array([200.0, 220.0, 238.0])
SKY_ZENITH = np.array([135.0, 175.0, 228.0])


class RenderedFrame(NamedTuple):
    """Renders of one frame, cameras in the description's camera_names order."""
    images: np.ndarray  # (N_cam, H, W, 3) uint8 RGB
    depth: np.ndarray  # (N_cam, H, W) float32 metres along the optical axis, inf for sky
    part: np.ndarray  # (N_cam, H, W) int32 index of the part drawn at the pixel, -1 for none
    visible: np.ndarray  # (X*Y*Z,) bool per voxel, index1d order: seen by at least one camera


def hash01(ix, iy, salt):
    """Deterministic pseudo-random values in [0, 1) of integer cell coordinates (arrays)."""
    h = (ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
         ^ iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F) ^ np.uint64(salt))
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return (h >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


def ground_colours(global_xy, layout):
    """RGB float colours (M, 3) of ground points (M, 2) given in global metres: road surface,
    markings and roadside ground from the layout, plus a fine and a coarse texture fixed to
    global x, y."""
    kind = surface_kind(layout, *layout.road_coordinates(global_xy))
    fine = np.floor(global_xy / 0.2).astype(np.int64)
    coarse = np.floor(global_xy / 2.0).astype(np.int64)
    noise = (0.7 * hash01(fine[:, 0], fine[:, 1], 1) + 0.3 * hash01(coarse[:, 0], coarse[:, 1], 2)
             - 0.5) * 2.0
    return SURFACE_COLOURS[kind] + (SURFACE_TEXTURE[kind] * noise)[:, None]


def _haze(colours, distance):
    weight = (1.0 - np.exp(-distance / HAZE_DISTANCE))[..., None]
    return colours * (1.0 - weight) + SKY_HORIZON * weight


# The 12 edges of a box as pairs of indices into parts.box_corners' corner order.
_BOX_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8)
                       if bin(a ^ b).count('1') == 1])


def camera_rects(boxes, lidar2img, width, height):
    """Pixel rectangles (N, 4) row_lo, row_hi, col_lo, col_hi (ends exclusive) holding the
    projection of each box clipped to the near plane (empty for a box wholly behind it).
    Pixel (row, col) is the ray through (col, row)."""
    projected = box_corners(boxes) @ lidar2img[:3, :3].T + lidar2img[:3, 3]  # (N, 8, 3)
    a, b = projected[:, _BOX_EDGES[:, 0]], projected[:, _BOX_EDGES[:, 1]]  # (N, 12, 3)
    with np.errstate(divide='ignore', invalid='ignore'):
        cut = (NEAR_PLANE - a[..., 2]) / (b[..., 2] - a[..., 2])
    crossing = (cut > 0) & (cut < 1)
    points = np.concatenate([projected, a + np.where(crossing, cut, 0)[..., None] * (b - a)],
                            axis=1)  # corners, then where edges cross the near plane
    valid = np.concatenate([projected[..., 2] >= NEAR_PLANE, crossing], axis=1)
    uv = points[..., :2] / np.maximum(points[..., 2:], NEAR_PLANE)
    lo = np.where(valid[..., None], uv, np.inf).min(axis=1)
    hi = np.where(valid[..., None], uv, -np.inf).max(axis=1)
    rects = np.stack([np.ceil(lo[:, 1]), np.floor(hi[:, 1]) + 1,
                      np.ceil(lo[:, 0]), np.floor(hi[:, 0]) + 1], axis=1)
    rects[~valid.any(axis=1)] = 0
    return np.clip(rects, 0, [height, height, width, width]).astype(np.int64)


def _face_coordinates(points, boxes, face):
    """Horizontal coordinate along the face and height above the box's bottom (metres) of hit
    points (M, 3) on faces `face` (M,) of boxes (M, 7)."""
    local = to_box_frame(points, boxes)
    across = np.where(face < 2, local[:, 1], local[:, 0])
    return across, local[:, 2] + boxes[:, 5] / 2


def shade_parts(parts, part, face, points, lidar2global, sun_direction, layout):
    """Colours (M, 3) of hits on parts: part index (M,), face entered (M,) and hit points (M, 3)
    in the lidar frame, lit by the sun (global unit vector); paving tops take the ground
    texture of the layout."""
    colour = parts.colour[part].astype(np.float32)
    material = parts.material[part]
    yaw = parts.boxes[part, 6] + np.arctan2(lidar2global[1, 0], lidar2global[0, 0])
    normal = FACE_NORMALS[face]
    sunlight = ((np.cos(yaw) * normal[:, 0] - np.sin(yaw) * normal[:, 1]) * sun_direction[0]
                + (np.sin(yaw) * normal[:, 0] + np.cos(yaw) * normal[:, 1]) * sun_direction[1]
                + normal[:, 2] * sun_direction[2])
    side = face < 4
    colour[(material == MATERIAL['cabin']) & side] = GLASS
    facade = np.flatnonzero((material == MATERIAL['facade']) & side)
    if len(facade):
        across, above = _face_coordinates(points[facade], parts.boxes[part[facade]], face[facade])
        column, floor = np.mod(across / 3.2, 1.0), np.mod((above - 1.0) / 3.0, 1.0)
        window = ((above > 1.0) & (column > 0.25) & (column < 0.75) & (floor > 0.3)
                  & (floor < 0.8))
        colour[facade[window]] = WINDOW_COLOUR
    colour[(material == MATERIAL['facade']) & ~side] *= 0.7
    stripes = np.flatnonzero(material == MATERIAL['stripes'])
    if len(stripes):
        across, above = _face_coordinates(points[stripes], parts.boxes[part[stripes]],
                                          face[stripes])
        colour[stripes[np.mod((across + above) / 0.5, 1.0) < 0.5]] = STRIPE_COLOUR
    foliage = np.flatnonzero(material == MATERIAL['foliage'])
    if len(foliage):
        world = points[foliage] @ lidar2global[:3, :3].T + lidar2global[:3, 3]
        cell = np.floor(world / 0.3).astype(np.int64)  # leaves fixed to the world
        speckle = hash01(cell[:, 0] + 7919 * cell[:, 2], cell[:, 1], 3)
        colour[foliage] *= (0.7 + 0.5 * speckle)[:, None]
    paving = np.flatnonzero((material == MATERIAL['paving']) & (face == FACE_UP))
    if len(paving):
        global_xy = points[paving, :2] @ lidar2global[:2, :2].T + lidar2global[:2, 3]
        colour[paving] = ground_colours(global_xy, layout)
    return colour * (SHADE_AMBIENT + SHADE_SUN * np.clip(sunlight, 0, None))[:, None]


class RigRenderer:
    """Renders the cameras of one vehicle. What depends only on the rig (pixel rays, the sky,
    each voxel's projection) is computed once."""

    def __init__(self, cams, image_size, description=OPENSCENE, grid2lidar=None,
                 ground_z=GROUND_Z):
        """Args:
            cams: dict CAM_* -> cams entry of the metadata (rig.make_rig).
            image_size: (width, height) pixels.
            description: OccDescription: camera order and the grid whose visibility is kept.
            grid2lidar: (4, 4) pose of the grid's frame in the lidar frame (rotation about z);
                None: the grid lives in the lidar frame (OpenScene).
            ground_z: height of the road plane in the grid's frame, metres (OpenScene's lidar
                frame: rig.GROUND_Z; Occ3D's ego frame: 0); voxels under the ground's bottom
                layer are never visible.
        """
        self.description = description
        self.camera_names = description.camera_names
        self.grid2lidar = np.eye(4) if grid2lidar is None else np.asarray(grid2lidar, float)
        self.first_layer = int(ground_layer(description, ground_z))
        self.width, self.height = int(image_size[0]), int(image_size[1])
        self.lidar2img = [lidar2img_matrix(cams[name]) for name in self.camera_names]
        self.centres = [np.asarray(cams[name]['sensor2lidar_translation'], dtype=np.float64)
                        for name in self.camera_names]
        u, v = np.meshgrid(np.arange(self.width), np.arange(self.height))
        pixels = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3).astype(np.float64)
        self.rays, self.sky = [], []
        for name in self.camera_names:
            # Rays with unit depth: a point at depth t along pixel p is centre + t * ray[p].
            rays = pixels @ np.linalg.inv(cams[name]['cam_intrinsic']).T
            rays = rays @ np.asarray(cams[name]['sensor2lidar_rotation']).T
            elevation = rays[:, 2] / np.linalg.norm(rays, axis=1)
            blend = np.clip(elevation / 0.5, 0, 1)[:, None] ** 0.8
            self.sky.append((SKY_HORIZON * (1 - blend) + SKY_ZENITH * blend).astype(np.float32))
            self.rays.append(rays)
        self.voxel_views = self._project_voxels()

    def _project_voxels(self):
        """Per camera the voxel test points that project inside the image: voxel index1d,
        pixel, depth. Test points: each voxel's centre and its top face centre; voxels under
        the ground's bottom layer are never visible."""
        grid = self.description
        size_x, size_y, size_z = grid.grid_shape
        first = self.first_layer * size_x * size_y
        centres = voxel_centers(grid.grid_shape, grid.point_cloud_range,
                                grid.voxel_size).transpose(2, 1, 0, 3).reshape(-1, 3)[first:]
        candidates = np.arange(first, size_x * size_y * size_z)
        half_height = grid.voxel_size / 2
        views = []
        for lidar2img in self.lidar2img:
            grid2img = lidar2img @ self.grid2lidar
            homo = centres @ grid2img[:3, :3].T + grid2img[:3, 3]
            index, pixel, depth = [], [], []
            for points in (homo, homo + half_height * grid2img[:3, 2]):  # centre, top face
                ahead = points[:, 2] > NEAR_PLANE
                uv = points[:, :2] / np.where(ahead, points[:, 2], 1.0)[:, None]
                col, row = np.round(uv[:, 0]), np.round(uv[:, 1])
                inside = np.flatnonzero(ahead & (col >= 0) & (col < self.width) & (row >= 0)
                                        & (row < self.height))
                index.append(candidates[inside].astype(np.int32))
                pixel.append((row[inside] * self.width + col[inside]).astype(np.int32))
                depth.append(points[inside, 2].astype(np.float32))
            views.append({'index': np.concatenate(index), 'pixel': np.concatenate(pixel),
                          'depth': np.concatenate(depth)})
        return views

    def render(self, parts, layout, lidar2global, sun_direction):
        """Render one frame.

        Args:
            parts: Parts of the frame in its lidar frame (scene.frame_parts).
            layout: RoadLayout of the log (ground heights and surfaces).
            lidar2global: (4, 4) pose of the frame's lidar.
            sun_direction: (3,) unit vector towards the sun, global.
        Returns:
            RenderedFrame.
        """
        lidar2global = np.asarray(lidar2global, dtype=np.float64)
        shape = (len(self.camera_names), self.height, self.width)
        images = np.empty((*shape, 3), dtype=np.uint8)
        depths = np.empty(shape, dtype=np.float32)
        drawn_parts = np.empty(shape, dtype=np.int32)
        visible = np.zeros(int(np.prod(self.description.grid_shape)), dtype=bool)
        for cam in range(len(self.camera_names)):
            centre, rays = self.centres[cam], self.rays[cam]
            t_ground = ground_hits(centre, rays, lidar2global, layout, FAR_GROUND)
            rects = camera_rects(parts.boxes, self.lidar2img[cam], self.width, self.height)
            t_box, box, face = first_box_hits(centre, rays, self.width, parts.boxes, rects,
                                              near=NEAR_PLANE)
            on_box = t_box < t_ground
            depth = np.where(on_box, t_box, t_ground)
            image = self.sky[cam].copy()
            ground = np.flatnonzero(~on_box & np.isfinite(t_ground))
            points = centre + depth[ground, None] * rays[ground]
            global_xy = points[:, :2] @ lidar2global[:2, :2].T + lidar2global[:2, 3]
            image[ground] = ground_colours(global_xy, layout)
            hits = np.flatnonzero(on_box)
            points_box = centre + depth[hits, None] * rays[hits]
            image[hits] = shade_parts(parts, box[hits], face[hits], points_box, lidar2global,
                                      sun_direction, layout)
            lit = np.flatnonzero(np.isfinite(depth))
            distance = depth[lit] * np.linalg.norm(rays[lit], axis=1)
            image[lit] = _haze(image[lit], distance)

            view = self.voxel_views[cam]
            seen = view['depth'] <= depth[view['pixel']] + VISIBILITY_TOLERANCE
            visible[view['index'][seen]] = True
            images[cam] = np.clip(np.round(image), 0, 255).astype(np.uint8).reshape(
                shape[1:] + (3,))
            depths[cam] = depth.reshape(shape[1:])
            drawn_parts[cam] = np.where(on_box, box, -1).reshape(shape[1:])
        return RenderedFrame(images, depths, drawn_parts, visible)
