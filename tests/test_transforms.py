"""Pipeline augmentations: pixel values worked by hand, geometry kept consistent."""
import numpy as np
import pytest

from occnet.datasets.transforms.bev_flip import RandomFlipBEV, mirror_matrix
from occnet.datasets.transforms.image import PadMultiViewImages, RandomScaleMultiViewImages
from occnet.datasets.transforms.photometric import (GridMaskMultiViewImages,
                                                    distort_photometric, grid_mask)
from occnet.geometry import lidar2img_matrix, project_points, voxel_centers


class ScriptedRng:
    """random() and uniform() return scripted values in call order."""

    def __init__(self, randoms, uniforms):
        self.randoms, self.uniforms = list(randoms), list(uniforms)

    def random(self):
        return self.randoms.pop(0)

    def uniform(self, low, high):
        value = self.uniforms.pop(0)
        assert low <= value <= high
        return value


PARAMS = dict(brightness_delta=32, contrast_range=(0.5, 1.5), saturation_range=(0.5, 1.5),
              hue_delta=180)


def test_photometric_brightness_then_contrast_on_grey():
    img = np.full((2, 3, 3), 100, dtype=np.uint8)
    # apply brightness +10, contrast first x1.2, saturation x1.5 and hue +90 (grey: no effect)
    rng = ScriptedRng([0.0, 0.0, 0.0, 0.0, 0.0], [10.0, 1.2, 1.5, 90.0])
    out = distort_photometric(img, rng, **PARAMS)
    assert out.dtype == np.uint8 and (out == 132).all()


def test_photometric_hue_rotates_red_to_green_and_clips():
    img = np.array([[[200, 0, 0]]], dtype=np.uint8)
    # no brightness, contrast last (not applied), no saturation, hue +120 degrees
    rng = ScriptedRng([0.9, 0.9, 0.9, 0.9, 0.0], [120.0])
    np.testing.assert_allclose(distort_photometric(img, rng, **PARAMS)[0, 0], [0, 200, 0],
                               atol=1)
    bright = np.full((1, 1, 3), 250, dtype=np.uint8)
    out = distort_photometric(bright, ScriptedRng([0.0, 0.9, 0.9, 0.9, 0.9], [32.0]), **PARAMS)
    assert (out == 255).all()


def test_grid_mask_by_hand():
    mask = grid_mask(6, 6, period=3, keep_ratio=1 / 3, offset_y=0, offset_x=1)
    rows = np.array([0, 1, 1, 0, 1, 1], dtype=bool)  # keep = 1 visible row per period
    cols = np.array([1, 0, 1, 1, 0, 1], dtype=bool)  # shifted by one column
    np.testing.assert_array_equal(mask, rows[:, None] & cols[None, :])
    assert mask.sum() == 16


def test_grid_mask_transform_fills_about_a_quarter_with_the_mean():
    np.random.seed(0)
    img = np.full((90, 160, 3), 7, dtype=np.uint8)
    out = GridMaskMultiViewImages(prob=1.0, keep_ratio=0.5, min_period=20).transform(
        {'imgs': [img] * 8})['imgs']
    for view in out:
        hidden = (view != 7).all(axis=-1)
        assert 0.1 < hidden.mean() < 0.45
        assert (view[hidden] == [124, 116, 104]).all()
    assert (img == 7).all()  # the input array is not modified


def test_pad_keeps_pixels_and_projection():
    imgs = [np.random.randint(0, 255, (45, 80, 3), dtype=np.uint8) for _ in range(2)]
    lidar2img = np.stack([np.eye(4)] * 2)
    out = PadMultiViewImages(size_divisor=32).transform(
        {'imgs': list(imgs), 'lidar2img': lidar2img, 'img_shape': (45, 80)})
    assert out['imgs'][0].shape == (64, 96, 3) and out['pad_shape'] == (64, 96)
    np.testing.assert_array_equal(out['imgs'][1][:45, :80], imgs[1])
    assert (out['imgs'][1][45:] == 0).all() and out['img_shape'] == (45, 80)
    np.testing.assert_array_equal(out['lidar2img'], lidar2img)


def camera(yaw_deg=0.0):
    """A front camera (x forward in lidar -> z forward in camera) turned by yaw."""
    yaw = np.radians(yaw_deg)
    cam2lidar = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
    turn = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    return {'sensor2lidar_rotation': turn @ cam2lidar, 'sensor2lidar_translation': [1, 0, 1.5],
            'cam_intrinsic': np.array([[500.0, 0, 320], [0, 500, 180], [0, 0, 1]])}


def test_random_scale_moves_projected_pixels_with_the_image():
    np.random.seed(1)
    lidar2img = np.stack([lidar2img_matrix(camera(a)) for a in (0, 30)])
    results = {'imgs': [np.zeros((360, 640, 3), np.uint8)] * 2, 'lidar2img': lidar2img,
               'img_shape': (360, 640)}
    out = RandomScaleMultiViewImages(scales=(0.5,)).transform(results)
    assert out['imgs'][0].shape == (180, 320, 3) and out['img_scale_factor'] == 0.5
    point = np.array([[20.0, 3.0, 0.5]])
    for n in range(2):
        before, _ = project_points(point, lidar2img[n])
        after, _ = project_points(point, out['lidar2img'][n])
        np.testing.assert_allclose(after, before * 0.5, atol=1e-9)


@pytest.mark.parametrize('flip_x,flip_y', [(True, False), (False, True), (True, True)])
def test_bev_flip_moves_labels_flow_and_geometry_together(flip_x, flip_y):
    labels = np.full((200, 200, 16), 11, dtype=np.uint8)
    labels[150, 120, 5] = 0
    flow = np.zeros((200, 200, 16, 2), dtype=np.float32)
    flow[150, 120, 5] = [2.0, -1.0]
    mask = np.zeros((200, 200, 16), dtype=bool)
    mask[150, 120, 5] = True
    lidar2img = np.stack([lidar2img_matrix(camera(a)) for a in (0, 45, -60)])
    results = {'aug_seed': 3, 'lidar2img': lidar2img.copy(), 'voxel_semantics': labels,
               'voxel_flow': flow, 'mask_camera': mask}
    out = RandomFlipBEV(flip_x_ratio=float(flip_x), flip_y_ratio=float(flip_y)).transform(
        results)
    assert out['bev_flip'] == (flip_x, flip_y)
    i, j = (49 if flip_x else 150), (79 if flip_y else 120)
    assert out['voxel_semantics'][i, j, 5] == 0 and (out['voxel_semantics'] == 0).sum() == 1
    assert out['mask_camera'][i, j, 5] and out['mask_camera'].sum() == 1
    np.testing.assert_allclose(out['voxel_flow'][i, j, 5],
                               [-2.0 if flip_x else 2.0, 1.0 if flip_y else -1.0])
    # the mirrored voxel's centre lands on the pixel where the original voxel was seen
    centres = voxel_centers()
    original, mirrored = centres[150, 120, 5], centres[i, j, 5]
    np.testing.assert_allclose(mirrored[:2] * [-1 if flip_x else 1, -1 if flip_y else 1],
                               original[:2])
    for n in range(3):
        uv_before, d_before = project_points(original[None], lidar2img[n])
        uv_after, d_after = project_points(mirrored[None], out['lidar2img'][n])
        np.testing.assert_allclose(d_after, d_before)
        np.testing.assert_allclose(uv_after, uv_before, atol=1e-9)
    np.testing.assert_array_equal(mirror_matrix(flip_x, flip_y) @ mirror_matrix(flip_x, flip_y),
                                  np.eye(4))


def test_bev_flip_draw_depends_only_on_the_shared_seed():
    flip = RandomFlipBEV()
    draws = {seed: flip.transform({'aug_seed': seed, 'lidar2img': np.eye(4)[None]})['bev_flip']
             for seed in range(40)}
    assert all(flip.transform({'aug_seed': s, 'lidar2img': np.eye(4)[None]})['bev_flip'] == d
               for s, d in draws.items())
    assert len(set(draws.values())) == 4


def textured_jpegs(folder, count=8, size=(640, 360), seed=0):
    """Camera-like JPEGs: smooth shading, hard-edged boxes and sensor noise (quality 90)."""
    import cv2
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        width, height = size
        ramp = np.linspace(60, 200, width)[None, :, None] + np.linspace(0, 40, height)[:, None,
                                                                                       None]
        image = np.repeat(ramp, 3, axis=2)
        for _ in range(12):
            x, y = rng.integers(0, width - 60), rng.integers(0, height - 40)
            image[y:y + rng.integers(10, 40), x:x + rng.integers(10, 60)] = rng.integers(0, 255,
                                                                                          3)
        image += rng.normal(0, 6, image.shape)
        path = str(folder / f'cam{i}.jpg')
        cv2.imwrite(path, np.clip(image, 0, 255).astype(np.uint8),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def test_reduced_decode_equals_decode_then_resize(tmp_path):
    from occnet.datasets.transforms.image import ResizeMultiViewImages
    from occnet.datasets.transforms.loading import LoadMultiViewImages
    calib = [camera(yaw) for yaw in range(0, 360, 45)]
    frame = dict(token='tok', img_paths=textured_jpegs(tmp_path),
                 **{key: np.stack([c[key] for c in calib]) for key in calib[0]})
    plain = ResizeMultiViewImages(scale=0.5).transform(
        LoadMultiViewImages().transform(dict(frame)))
    reduced = LoadMultiViewImages(decode_scale=0.5).transform(dict(frame))
    assert reduced['img_shape'] == plain['img_shape'] == (180, 320)
    assert reduced['ori_shape'] == (360, 640)
    np.testing.assert_allclose(reduced['lidar2img'], plain['lidar2img'], rtol=0, atol=1e-12)
    for fast, slow in zip(reduced['imgs'], plain['imgs']):
        diff = np.abs(fast.astype(int) - slow.astype(int))
        # rounding of the noise, not content: the same image one pixel off differs 10x more
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 8
        shifted = np.abs(np.roll(fast, 1, axis=1).astype(int) - slow.astype(int))
        assert shifted.mean() > 2.0
    with pytest.raises(ValueError, match='decode_scale must be 1, 0.5, 0.25 or 0.125'):
        LoadMultiViewImages(decode_scale=0.3)
