"""The synthetic world's parts, checked on hand-made scenes: voxelisation by hand, the ground and
terrain, lidar returns on the surfaces they hit, occlusion by buildings in the cameras and in the
visibility mask, object shapes, and colours that do not give the class away."""
import numpy as np
import pytest

from occnet.datasets.synthetic.layout import (KIND, SIDEWALK_HEIGHT, ZONE, RoadLayout,
                                              support_height, terrain_height)
from occnet.datasets.synthetic.lidar import MAX_RANGE, NUM_BEAMS, LidarScanner
from occnet.datasets.synthetic.objects import COLLISION_MARGIN
from occnet.datasets.synthetic.parts import MATERIAL, concat_parts, make_parts, rectangles_overlap
from occnet.datasets.synthetic.raycast import first_box_hits
from occnet.datasets.synthetic.render import NEAR_PLANE, RigRenderer, camera_rects
from occnet.datasets.synthetic.rig import make_rig
from occnet.datasets.synthetic.scene import frame_parts
from occnet.datasets.synthetic.shapes import make_shape
from occnet.datasets.synthetic.voxelize import GROUND_LAYER, part_voxels, voxelize_frame
from occnet.datasets.synthetic.world import frame_time, make_world
from occnet.descriptions import OPENSCENE
from occnet.geometry import (lidar2img_matrix, points_to_voxel_indices, pose_matrix,
                             project_points, voxel_centers, xyz_to_index1d)

CAMERA_NAMES, CLASS_NAMES = OPENSCENE.camera_names, OPENSCENE.class_names
FREE_INDEX, GRID_SHAPE = OPENSCENE.free_index, OPENSCENE.grid_shape
BACKGROUND_INDEX = CLASS_NAMES.index('background')
LIDAR_POSE = pose_matrix([0.0, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0])  # lidar 2 m above the road
VEHICLE, BARRIER = CLASS_NAMES.index('vehicle'), CLASS_NAMES.index('barrier')


def layout_of(zone, peak=0.0):
    """A road along x through the origin with one zone kind on both sides."""
    return RoadLayout(origin=np.zeros(2), crosswalk_offset=75.0,
                      zone_edges=[np.array([-1e4, 1e4])] * 2,
                      zone_kind=[np.array([ZONE[zone]])] * 2,
                      terrain=np.array([[peak, 10.0, 14.0, 0.3, 1.1, 0.4]] * 2))


def frame_pose(world, k):
    """lidar2global of key frame k (the rig's lidar 1.5 m ahead of and 2 m above the ego)."""
    yaw = world.ego.yaw[k]
    ego2global = pose_matrix(world.ego.translation[k], [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
    return ego2global @ pose_matrix([1.5, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0])


def voxel_of(point):
    idx, inside = points_to_voxel_indices(np.asarray(point, dtype=np.float64)[None])
    assert inside[0]
    return tuple(int(v) for v in idx[0])


def test_part_voxels_by_hand():
    # 4 x 2 x 1.5 m aligned with the grid: exactly 8 x 4 x 3 voxels
    part, xyz = part_voxels(np.array([[12.0, 0.0, -1.25, 4.0, 2.0, 1.5, 0.0]]))
    assert len(part) == 8 * 4 * 3
    assert xyz[:, 0].min() == 120 and xyz[:, 0].max() == 127
    assert xyz[:, 2].min() == GROUND_LAYER + 1 and xyz[:, 2].max() == GROUND_LAYER + 3
    # a square turned by 45 degrees whose corners reach the middle of the 4 side neighbours of
    # voxel (100, 100): the diagonal neighbours are only touched at a point, so 5 columns (a
    # bounding-box voxeliser gives 9)
    side = 0.5 / np.sqrt(2) * 2
    part, xyz = part_voxels(np.array([[0.25, 0.25, -0.75, side, side, 0.5, np.pi / 4]]))
    assert sorted(map(tuple, xyz[:, :2])) == [(99, 100), (100, 99), (100, 100), (100, 101),
                                              (101, 100)]
    # a thin pole inside one column, and a box that only touches its neighbours' faces
    part, xyz = part_voxels(np.array([[0.2, 0.2, -1.0, 0.1, 0.1, 1.0, 0.3],
                                      [0.25, 0.25, -0.75, 0.5, 0.5, 0.5, 0.0]]))
    assert sorted(map(tuple, xyz[part == 0])) == [(100, 100, 5), (100, 100, 6)]
    assert sorted(map(tuple, xyz[part == 1])) == [(100, 100, 6)]


def test_ground_columns_and_terrain():
    labels, _, owner, kinds = voxelize_frame(concat_parts([]), layout_of('lot'), LIDAR_POSE)
    assert np.all(labels[:, :, GROUND_LAYER] == BACKGROUND_INDEX)
    assert np.all(labels[:, :, GROUND_LAYER + 1:] == FREE_INDEX)
    assert np.all(labels[:, :, :GROUND_LAYER] == FREE_INDEX) and np.all(owner == -1)
    assert kinds[100, 100, GROUND_LAYER] == KIND['driveable_surface']  # the road
    assert kinds[100, 100 + 26, GROUND_LAYER] == KIND['sidewalk']  # y = 13 m
    assert kinds[100, 100 + 40, GROUND_LAYER] == KIND['driveable_surface']  # a lot, y = 20 m

    green = layout_of('green', peak=0.45)
    s = np.linspace(-50, 50, 401)
    for d in (5.0, 13.0, 15.0):  # road, sidewalk band, the sidewalk's outer edge: flat
        assert not terrain_height(green, s, np.full_like(s, d)).any()
    height = terrain_height(green, s, np.full_like(s, 25.0))
    assert height.min() >= 0 and 0.1 < height.max() <= 0.45
    assert np.all(support_height(green, s, np.full_like(s, -12.0)) == SIDEWALK_HEIGHT)
    # a turned frame: the layer above the road is occupied exactly in the columns where the
    # terrain rises somewhere (checked on 20 x 20 samples per column)
    pose = pose_matrix([3.0, -2.0, 2.0], [np.cos(0.15), 0.0, 0.0, np.sin(0.15)])
    labels, _, _, kinds = voxelize_frame(concat_parts([]), green, pose)
    raised = labels[:, :, GROUND_LAYER + 1] == BACKGROUND_INDEX
    offsets = (np.arange(20) + 0.5) / 20 * 0.5
    local = np.stack(np.meshgrid(np.arange(200)[:, None] * 0.5 + offsets - 50.0,
                                 np.arange(200)[:, None] * 0.5 + offsets - 50.0, indexing='ij'),
                     axis=-1).reshape(-1, 2)
    world = local @ pose[:2, :2].T + pose[:2, 3]
    sampled = (terrain_height(green, world[:, 0], world[:, 1]) > 0).reshape(200, 20, 200, 20)
    sampled = sampled.any(axis=(1, 3))
    assert sampled.sum() > 5000 and np.all(raised[sampled])
    assert (raised & ~sampled).sum() <= 0.01 * raised.sum()  # slivers between samples
    assert (kinds[raised, GROUND_LAYER] == KIND['terrain']).mean() > 0.97  # by column centre
    assert not (labels[:, :, GROUND_LAYER + 2:] == BACKGROUND_INDEX).any()  # at most a voxel


def aligned_scene():
    """Boxes whose faces lie on voxel faces: a wall, a car-sized block and a pole."""
    boxes = [[20.0, 5.5, -0.5, 1.0, 10.0, 3.0, 0.0],  # wall x 19.5-20.5, y 0.5-10.5, z -2..1
             [8.0, -4.0, -1.25, 4.0, 2.0, 1.5, 0.0],  # block x 6-10, y -5..-3
             [-6.25, 3.25, 0.0, 0.5, 0.5, 4.0, 0.0]]  # pole
    return make_parts(boxes, [BACKGROUND_INDEX, VEHICLE, BACKGROUND_INDEX],
                      [KIND['manmade'], -1, KIND['manmade']], [-1, 0, -1],
                      [[150, 150, 150], [200, 30, 30], [90, 90, 90]], MATERIAL['plain'])


def test_lidar_returns_lie_on_the_surfaces_they_hit():
    layout = layout_of('lot')
    parts = aligned_scene()
    labels, _, _, _ = voxelize_frame(parts, layout, LIDAR_POSE)
    scanner = LidarScanner()
    points = scanner.scan(parts, layout, LIDAR_POSE)
    assert points.dtype == np.float32 and points.shape[1] == 6
    distance = np.linalg.norm(points[:, :3], axis=1)
    assert distance.max() <= MAX_RANGE + 1e-3
    assert set(np.unique(points[:, 4]).astype(int)) <= set(range(NUM_BEAMS))
    direction = points[:, :3] / distance[:, None]
    # the voxel just behind each return is occupied ...
    idx, inside = points_to_voxel_indices(points[:, :3] + 1e-3 * direction)
    hit = labels[tuple(idx[inside].T)]
    assert np.all(hit != FREE_INDEX)
    assert (hit == VEHICLE).sum() > 50 and (idx[inside, 0] == 139).sum() > 50  # block, wall
    # ... and every voxel the ray crosses before it is free
    steps = np.arange(0.02, 80.0, 0.05)
    for point, dist, unit in zip(points[::7, :3], distance[::7], direction[::7]):
        samples = unit[None] * steps[steps < dist - 0.01, None]
        idx, inside = points_to_voxel_indices(samples)
        assert np.all(labels[tuple(idx[inside].T)] == FREE_INDEX)
    # the road return straight below-ahead of the lidar on the lowest beam, by hand
    lowest = points[(points[:, 4] == 0)]
    ahead = lowest[np.argmin(np.abs(np.arctan2(lowest[:, 1], lowest[:, 0])))]
    np.testing.assert_allclose(ahead[:3], [2.0 / np.tan(np.deg2rad(30.0)), 0.0, -2.0], atol=1e-4)


def test_culling_rectangles_miss_no_hit():
    world = make_world(np.random.default_rng(4), 2)
    lidar2global = frame_pose(world, 0)
    awkward = make_parts([[10.0, 0.0, -1.0, 2.0, 4.0, 2.0, 0.1],  # across azimuth 0
                          [-10.0, 0.3, -1.0, 2.0, 4.0, 2.0, -0.2],  # across azimuth 180
                          [0.0, 0.0, 0.4, 6.0, 0.4, 0.2, 0.0],  # just above the lidar
                          [-2.0, 1.0, 0.65, 2.0, 4.0, 0.7, 0.0]],  # through CAM_L1's plane
                         BACKGROUND_INDEX, KIND['manmade'], -1, [90, 90, 90], MATERIAL['plain'])
    scanner = LidarScanner()
    cams = make_rig(np.random.default_rng(0), (64, 36))
    for parts in (awkward, frame_parts(world, 0.0, lidar2global, reach=60.0)):
        check_culling(parts, scanner, cams)
    for index in range(len(awkward)):  # each awkward box is met by some beam
        assert (first_box_hits(scanner.origin, scanner.directions, scanner.num_columns,
                               awkward.boxes, scanner.rects(awkward.boxes),
                               wrap_cols=True)[1] == index).sum() > 5


def check_culling(parts, scanner, cams):
    """Lidar and camera first hits with culling rectangles equal those of testing every ray
    against every box (distance, box and face)."""
    everywhere = np.tile([0, NUM_BEAMS, 0, scanner.num_columns], (len(parts), 1))
    culled = first_box_hits(scanner.origin, scanner.directions, scanner.num_columns,
                            parts.boxes, scanner.rects(parts.boxes), wrap_cols=True)
    brute = first_box_hits(scanner.origin, scanner.directions, scanner.num_columns,
                           parts.boxes, everywhere)
    assert np.isfinite(brute[0]).sum() > 100
    for got, expected in zip(culled, brute):
        np.testing.assert_array_equal(got, expected)
    for name in ('CAM_F0', 'CAM_L1', 'CAM_B0'):
        u, v = np.meshgrid(np.arange(64), np.arange(36))
        pixels = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3).astype(np.float64)
        rays = pixels @ np.linalg.inv(cams[name]['cam_intrinsic']).T \
            @ np.asarray(cams[name]['sensor2lidar_rotation']).T
        centre = np.asarray(cams[name]['sensor2lidar_translation'])
        rects = camera_rects(parts.boxes, lidar2img_matrix(cams[name]), 64, 36)
        culled = first_box_hits(centre, rays, 64, parts.boxes, rects, near=NEAR_PLANE)
        brute = first_box_hits(centre, rays, 64, parts.boxes,
                               np.tile([0, 36, 0, 64], (len(parts), 1)), near=NEAR_PLANE)
        assert np.isfinite(brute[0]).sum() > 50
        for got, expected in zip(culled, brute):
            np.testing.assert_array_equal(got, expected)


def test_lidar_returns_on_the_terrain():
    green = layout_of('green', peak=0.45)
    points = LidarScanner().scan(concat_parts([]), green, LIDAR_POSE)
    labels, _, _, _ = voxelize_frame(concat_parts([]), green, LIDAR_POSE)
    beyond = np.abs(points[:, 1]) > 15.0
    height = terrain_height(green, points[beyond, 0], points[beyond, 1])
    assert (height > 0.1).sum() > 500
    np.testing.assert_allclose(points[beyond, 2] + 2.0, height, atol=1e-3)  # on the surface
    distance = np.linalg.norm(points[:, :3], axis=1, keepdims=True)
    idx, inside = points_to_voxel_indices(points[:, :3] + 1e-3 * points[:, :3] / distance)
    assert np.all(labels[tuple(idx[inside].T)] == BACKGROUND_INDEX)


def test_a_building_occludes_an_object_in_images_and_visibility():
    layout = layout_of('lot')
    cams = make_rig(np.random.default_rng(0), (160, 90))
    renderer = RigRenderer(cams, (160, 90))
    car = make_parts([[25.0, 0.0, -1.25, 4.0, 2.0, 1.5, 0.0]], VEHICLE, -1, 0, [30, 60, 200],
                     MATERIAL['plain'])
    building = make_parts([[12.0, 0.0, 1.0, 4.0, 24.0, 6.0, 0.0]], BACKGROUND_INDEX,
                          KIND['manmade'], -1, [200, 180, 150], MATERIAL['plain'])
    sun = np.array([-1.0, 0.0, 0.0])  # full light on the faces that look at the ego
    front = CAMERA_NAMES.index('CAM_F0')
    uv, depth = project_points(np.array([[23.0, 0.0, -1.25]]), lidar2img_matrix(cams['CAM_F0']))
    col, row = np.round(uv[0]).astype(int)
    car_voxels = xyz_to_index1d([voxel_of([23.2, 0.0, -1.25]), voxel_of([25.0, 0.0, -1.75])])

    alone = renderer.render(car, layout, LIDAR_POSE, sun)
    assert alone.part[front, row, col] == 0 and abs(alone.depth[front, row, col] - depth[0]) < 0.3
    assert alone.visible[car_voxels[0]] and not alone.visible[car_voxels[1]]  # front face only

    scene = concat_parts([building, car])
    hidden = renderer.render(scene, layout, LIDAR_POSE, sun)
    assert hidden.part[front, row, col] == 0  # the building (part 0) covers the car's pixel
    building_depth = 10.0 - cams['CAM_F0']['sensor2lidar_translation'][0]
    assert abs(hidden.depth[front, row, col] - building_depth) < 0.1
    np.testing.assert_allclose(hidden.images[front, row, col], [200, 180, 150], atol=12)
    assert not hidden.visible[car_voxels].any()  # no camera sees past the building
    assert hidden.visible[xyz_to_index1d([voxel_of([10.2, 0.0, -1.25])])[0]]  # its front face
    labels, _, _, _ = voxelize_frame(scene, layout, LIDAR_POSE)
    assert labels[voxel_of([23.2, 0.0, -1.25])] == VEHICLE

    def seen(point):
        return hidden.visible[xyz_to_index1d([voxel_of(point)])[0]]

    assert seen([8.0, 3.0, -2.25]) and seen([8.0, 3.0, -1.25])  # road and air before it
    assert not seen([8.0, 3.0, -2.75]) and not seen([0.0, 0.0, -1.25])  # under it; the ego
    assert not seen([13.0, 0.0, -1.25])  # inside the building
    assert np.all(hidden.part[CAMERA_NAMES.index('CAM_B0')] == -1)  # nothing behind


def test_images_agree_with_the_labels():
    """Every object pixel within 30 m shows a surface of the object that owns the voxel behind
    it, and nearly every object voxel a camera sees shows its object somewhere inside the
    voxel's projection (thin bicycle parts can fall between pixel centres)."""
    world = make_world(np.random.default_rng(3), 3)
    cams = make_rig(np.random.default_rng(3), (160, 90))
    renderer = RigRenderer(cams, (160, 90))
    lidar2global = frame_pose(world, 1)
    parts = frame_parts(world, frame_time(1), lidar2global)
    labels, _, owner, _ = voxelize_frame(parts, world.layout, lidar2global)
    out = renderer.render(parts, world.layout, lidar2global, world.sun_direction)
    pixels_checked, pixels_agree = 0, 0
    for cam in range(len(CAMERA_NAMES)):
        drawn = out.part[cam].reshape(-1)
        depth = out.depth[cam].reshape(-1)
        pixels = np.flatnonzero((drawn >= 0) & (depth < 30.0))
        pixels = pixels[parts.owner[drawn[pixels]] >= 0]
        rays = renderer.rays[cam][pixels]
        points = renderer.centres[cam] + depth[pixels, None] * rays
        idx, inside = points_to_voxel_indices(
            points + 1e-3 * rays / np.linalg.norm(rays, axis=1, keepdims=True))
        pixels_checked += inside.sum()
        pixels_agree += (owner[tuple(idx[inside].T)] == parts.owner[drawn[pixels[inside]]]).sum()
    assert pixels_checked > 2000 and pixels_agree / pixels_checked > 0.99

    visible = out.visible.reshape(GRID_SHAPE[::-1]).transpose(2, 1, 0)
    objects = np.argwhere(visible & (labels < BACKGROUND_INDEX))
    corners = voxel_centers()[tuple(objects.T)][:, None] + 0.25 * np.array(
        list(np.ndindex(2, 2, 2))) * 2 - 0.25  # (M, 8, 3)
    found = np.zeros(len(objects), dtype=bool)
    for cam in range(len(CAMERA_NAMES)):
        owner_drawn = np.where(out.part[cam] >= 0, parts.owner[out.part[cam]], -1)
        uv, depth = project_points(corners.reshape(-1, 3), renderer.lidar2img[cam])
        uv, depth = uv.reshape(-1, 8, 2), depth.reshape(-1, 8)
        lo = np.clip(np.floor(uv.min(axis=1)).astype(int), 0, [160, 90])
        hi = np.clip(np.ceil(uv.max(axis=1)).astype(int) + 1, 0, [160, 90])
        for i in np.flatnonzero((depth.min(axis=1) > 0.5) & np.all(hi > lo, axis=1)):
            window = owner_drawn[lo[i, 1]:hi[i, 1], lo[i, 0]:hi[i, 0]]
            found[i] |= bool((window == owner[tuple(objects[i])]).any())
    assert len(objects) > 200 and found.mean() > 0.97, (len(objects), found.mean())


def test_shapes_say_what_a_thing_is():
    rng = np.random.default_rng(0)
    for _ in range(20):
        size, (body, cabin) = make_shape(rng, 'vehicle', 'parking')
        assert cabin[2] == pytest.approx(body[5]) and cabin[3] < body[3] and cabin[4] < body[4]
        assert cabin[7] == MATERIAL['cabin'] and size[2] == pytest.approx(body[5] + cabin[5])
        size, parts = make_shape(rng, 'pedestrian', 'sidewalk')
        assert size[2] / max(size[0], size[1]) > 2.7 and len(parts) == 3
        size, parts = make_shape(rng, 'bicycle', 'bike_lane')
        assert size[0] / size[2] > 1.35 and size[2] < 1.2
        size, parts = make_shape(rng, 'traffic_cone', 'edge')
        widths = [p[3] for p in parts]
        assert widths == sorted(widths, reverse=True) and widths[-1] < 0.5 * widths[0]
        size, parts = make_shape(rng, 'barrier', 'roadside')
        assert size[0] > 1.7 * size[2]
        size, (plate, post, foot) = make_shape(rng, 'czone_sign', 'curbside')
        assert post[3] < 0.1 and plate[2] > 0.7 and plate[2] + plate[5] == pytest.approx(size[2])
    trucks = [make_shape(rng, 'vehicle', 'lane')[0] for _ in range(60)]
    assert max(size[2] for size in trucks) > 2.9  # lanes carry trucks too


def test_colours_do_not_give_the_class_away():
    world = make_world(np.random.default_rng(1), 20)
    colours = world.objects.colour.astype(np.float64)  # the paint each object drew
    classes = world.objects.class_index
    distance = np.linalg.norm(colours[:, None] - colours[None], axis=2)
    # objects of one class differ: vehicles from near black to near white, for example
    for name, spread in (('vehicle', 250), ('pedestrian', 150), ('barrier', 100),
                         ('bicycle', 100), ('generic_object', 100)):
        index = classes == CLASS_NAMES.index(name)
        assert distance[np.ix_(index, index)].max() > spread, name
    # and classes share paints: many pairs of classes have objects a few grey levels apart
    pairs = np.argwhere((distance < 30) & (classes[:, None] != classes[None]))
    shared = {tuple(sorted((CLASS_NAMES[classes[i]], CLASS_NAMES[classes[j]]))) for i, j in pairs}
    assert {('barrier', 'vehicle'), ('pedestrian', 'vehicle'), ('czone_sign', 'traffic_cone'),
            ('bicycle', 'vehicle')} <= shared and len(shared) >= 8, shared


def boxes_overlap(a, b):
    """(N, M) whether yaw boxes a (N, 7) and b (M, 7) share a positive volume."""
    footprint = rectangles_overlap(a[:, None, :2], a[:, None, 6], a[:, None, 3:5] / 2 - 1e-6,
                                   b[None, :, :2], b[None, :, 6], b[None, :, 3:5] / 2 - 1e-6)
    low = np.maximum(a[:, None, 2] - a[:, None, 5] / 2, b[None, :, 2] - b[None, :, 5] / 2)
    high = np.minimum(a[:, None, 2] + a[:, None, 5] / 2, b[None, :, 2] + b[None, :, 5] / 2)
    return footprint & (high - low > 1e-6)


def test_objects_and_structures_do_not_intersect():
    world = make_world(np.random.default_rng(2), 10)
    structures = world.structures
    sidewalk = structures.kind == KIND['sidewalk']
    # tree crowns stay out of buildings, walls and sheds
    crowns = structures.boxes[(structures.kind == KIND['vegetation'])
                              & (structures.boxes[:, 2] - structures.boxes[:, 5] / 2 > 1.5)]
    built = structures.boxes[(structures.kind == KIND['manmade'])
                             & (structures.boxes[:, 3] * structures.boxes[:, 4] > 2.0)]
    assert len(crowns) > 50 and len(built) > 10
    assert not boxes_overlap(crowns, built).any()
    moving = np.linalg.norm(world.objects.velocity, axis=1) > 0
    for t in frame_time(np.arange(10)):
        parts = frame_parts(world, t, np.eye(4), reach=1e6)
        objects = parts.owner >= 0
        static = objects & ~moving[np.maximum(parts.owner, 0)]
        # no object part inside a structure; static objects stand on, not in, the sidewalks
        standing = parts.boxes[:len(structures)][~sidewalk]  # structures come first
        assert not boxes_overlap(parts.boxes[objects], standing).any()
        assert not boxes_overlap(parts.boxes[static], structures.boxes[sidewalk]).any()
    assert len(world.objects.category) > 50 and COLLISION_MARGIN > 0
