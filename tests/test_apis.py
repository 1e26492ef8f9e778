"""occnet.apis: init_model + inference_occ predict what tools/test.py's path predicts (the
config's test dataset, occ_collate, the data preprocessor and predict), frame by frame with
the previous BEV carried within a scene; checkpoints that do not fit are refused."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction

from conftest import REPO_ROOT
from occnet.apis import frame_from_info, inference_occ, init_model
from occnet.datasets.collate import occ_collate
from occnet.datasets.infos import load_infos
from occnet.engine.checkpoint_fit import CheckpointMismatchError
from occnet.registry import DATASETS, MODELS
from test_tools_e2e import CONFIG, tiny_options

VIDEO = {'model.video_test_mode': True}  # the demo config tests frame by frame without it


def options(data_root, **extra):
    """tiny_options as a {key: value} dict (what --cfg-options parses them into)."""
    parsed = dict(opt.split('=', 1) for opt in tiny_options(data_root))
    return {**{k: DictAction._parse_iterable(v) for k, v in parsed.items()}, **extra}


def tiny_config(data_root, **extra):
    cfg = Config.fromfile(os.path.join(REPO_ROOT, CONFIG))
    cfg.merge_from_dict(options(data_root, **extra))
    return cfg


@pytest.fixture(scope='module')
def checkpoint(tiny_data_root, tmp_path_factory):
    """A randomly initialised tiny model saved as tools/train.py saves one; its classifier
    starts without the class-frequency prior, so the predictions hold every class and a
    change in the BEV shows in them."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_config(tiny_data_root).model)
    last = model.occ_head.classifier[-1]
    torch.nn.init.normal_(last.weight, std=1.0)
    torch.nn.init.zeros_(last.bias)
    path = tmp_path_factory.mktemp('apis') / 'epoch_1.pth'
    name = os.path.splitext(os.path.basename(CONFIG))[0]
    torch.save({'state_dict': model.state_dict(),
                'meta': {'epoch': 1, 'experiment_name': f'{name}_20250101_120000'}}, path)
    return path


def reference_predictions(cfg, checkpoint, indices):
    """{token: (X, Y, Z) uint8} of the test dataset's frames `indices`, each batch as the
    test dataloader makes it, through one model in that order (tools/test.py's path)."""
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    out = {}
    with torch.no_grad():
        for i in indices:
            result = model.test_step(occ_collate([dataset[i]]))[0]
            out[result['token']] = result['occ_pred'].numpy()
    return out


@pytest.fixture(scope='module')
def val_frames(tiny_data_root):
    """inference_occ frames of the held-out log's infos, in their (time) order."""
    infos = load_infos(str(tiny_data_root / 'openscene_mini_val.pkl'))
    return [frame_from_info(info, str(tiny_data_root)) for info in infos]


def test_scene_by_scene_equals_the_test_path_with_the_bev_carried(tiny_data_root, checkpoint,
                                                                   val_frames):
    cfg = tiny_config(tiny_data_root, **VIDEO)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    order = [dataset.get_data_info(i)['token'] for i in range(len(dataset))]
    assert [f['token'] for f in val_frames] == order
    # the held-out log: 2 scenes of 3 frames, each frame after the first linked to the one
    # before it, so frames 2 and 3 of each scene run on the carried BEV
    assert list(dataset.prev_indices) == [-1, 0, 1, -1, 3, 4]
    expected = reference_predictions(cfg, checkpoint, range(len(dataset)))
    model = init_model(cfg, checkpoint, device='cpu')
    for frame in val_frames:
        result = inference_occ(model, frame)
        assert result['semantics'].dtype == np.uint8
        assert result['semantics'].shape == (200, 200, 16) and set(result) == {'semantics'}
        np.testing.assert_array_equal(result['semantics'], expected[frame['token']],
                                      err_msg=frame['token'])


def test_a_new_scene_token_drops_the_carried_bev(tiny_data_root, checkpoint, val_frames):
    cfg = tiny_config(tiny_data_root, **VIDEO)
    # frame 2 of the scene alone through the test path: no previous BEV
    alone = reference_predictions(cfg, checkpoint, [1])[val_frames[1]['token']]
    carried = reference_predictions(cfg, checkpoint, [0, 1])[val_frames[1]['token']]
    assert len(np.unique(alone)) == 12, 'a prediction of few classes would test little'
    assert (alone != carried).mean() > 0.01, 'the carried BEV changes few voxels'
    model = init_model(cfg, checkpoint, device='cpu')
    inference_occ(model, val_frames[0])
    np.testing.assert_array_equal(
        inference_occ(model, dict(val_frames[1], scene_token='another'))['semantics'], alone)
    inference_occ(model, val_frames[0])  # and a frame given without a token
    np.testing.assert_array_equal(
        inference_occ(model, dict(val_frames[1], token=None))['semantics'], alone)
    inference_occ(model, val_frames[0])  # and one 2 s after the previous: the link breaks
    late = dict(val_frames[1], timestamp=val_frames[0]['timestamp'] + 2_000_000)
    np.testing.assert_array_equal(inference_occ(model, late)['semantics'], alone)
    inference_occ(model, val_frames[0])
    np.testing.assert_array_equal(inference_occ(model, val_frames[1])['semantics'], carried)


def test_image_arrays_predict_as_their_files(tiny_data_root, checkpoint, val_frames):
    from occnet.datasets.transforms.loading import read_jpeg
    model = init_model(tiny_config(tiny_data_root), checkpoint, device='cpu')
    frame = val_frames[0]
    arrays = [read_jpeg(path, frame['token'], 'cam') for path in frame['images']]
    from_files = inference_occ(model, frame)['semantics']
    np.testing.assert_array_equal(inference_occ(model, dict(frame, images=arrays))['semantics'],
                                  from_files)


def test_init_model_works_in_a_plain_interpreter(tiny_data_root, checkpoint, val_frames,
                                                 tmp_path):
    # no registry scope, no mmengine call: what a notebook does; the first held-out frame
    # with a config path and --cfg-options style overrides
    script = (
        'import json, sys, numpy as np\n'
        'from occnet.apis import init_model, inference_occ, frame_from_info\n'
        'from occnet.datasets.infos import load_infos\n'
        'root, config, ckpt, opts, out, token = sys.argv[1:]\n'
        "model = init_model(config, ckpt, device='cpu', cfg_options=json.loads(opts))\n"
        "info = [i for i in load_infos(root + '/openscene_mini_val.pkl')"
        " if i['token'] == token][0]\n"
        "np.save(out, inference_occ(model, frame_from_info(info, root))['semantics'])\n")
    out = tmp_path / 'semantics.npy'
    run = subprocess.run([sys.executable, '-c', script, str(tiny_data_root), CONFIG,
                          str(checkpoint), json.dumps(options(tiny_data_root)), str(out),
                          val_frames[0]['token']], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert run.returncode == 0, run.stderr[-3000:]
    cfg = tiny_config(tiny_data_root)
    expected = reference_predictions(cfg, checkpoint, [0])[val_frames[0]['token']]
    np.testing.assert_array_equal(np.load(out), expected)


def test_a_checkpoint_of_another_shape_is_refused_unless_partial(tiny_data_root, checkpoint):
    wider = tiny_config(tiny_data_root, **{'model.occ_head.hidden_dims': 8})
    with pytest.raises(CheckpointMismatchError) as err:
        init_model(wider, checkpoint, device='cpu')
    message = str(err.value)
    assert 'occ_head.lift.weight (64, 16) in the checkpoint, (128, 16) in the model' in message
    assert 'trained with ' + CONFIG in message and 'allow_partial=True' in message
    model = init_model(wider, checkpoint, device='cpu', allow_partial=True)
    saved = torch.load(checkpoint, weights_only=True)['state_dict']
    loaded = model.state_dict()
    for key in ('img_neck.lateral_convs.0.weight', 'occ_head.bev_convs.0.weight'):
        assert torch.equal(loaded[key], saved[key]), key
    assert loaded['occ_head.lift.weight'].shape == (128, 16)
    assert not model.training and model.checkpoint_meta['epoch'] == 1


def test_cuda_asked_without_cuda_falls_back_to_the_cpu(tiny_data_root):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    with pytest.warns(UserWarning, match='CUDA is not available'):
        model = init_model(tiny_config(tiny_data_root), device='cuda')
    assert next(model.parameters()).device.type == 'cpu'


@pytest.mark.parametrize('change, message', [
    (lambda f: dict(f, images=f['images'][:7]),
     "frame['images'] has 7 images; the config's dataset has 8 cameras"),
    (lambda f: dict(f, images=f['images'][:2] + ['/no/such/CAM_L1.jpg'] + f['images'][3:]),
     r"frame['images'][2] (CAM_L1): no image file at /no/such/CAM_L1.jpg"),
    (lambda f: dict(f, lidar2img=f['lidar2img'][:, :3]),
     "frame['lidar2img'] has shape (8, 3, 4); expected (8, 4, 4)"),
    (lambda f: dict(f, images=[np.zeros((9, 16), np.uint8)] * 8),
     "frame['images'][0] (CAM_F0): expected an image path or an HxWx3 uint8 RGB array"),
])
def test_bad_frames_are_refused_naming_the_key(tiny_data_root, val_frames, change, message,
                                               tmp_path):
    model = init_model(tiny_config(tiny_data_root), device='cpu')
    with pytest.raises(ValueError) as err:
        inference_occ(model, change(val_frames[0]))
    assert message in str(err.value)


def test_a_frame_without_can_bus_takes_its_pose_and_warns(tiny_data_root, checkpoint,
                                                          val_frames):
    from occnet.apis.inference import stored_can_bus
    frame = val_frames[0]
    # what the pose says of the stored can_bus: the ego position and heading quaternion
    np.testing.assert_allclose(stored_can_bus({}, frame['ego2global'])[:7],
                               frame['can_bus'][:7], atol=1e-6)
    assert not stored_can_bus({}, frame['ego2global'])[7:].any()
    model = init_model(tiny_config(tiny_data_root), checkpoint, device='cpu')
    with pytest.warns(UserWarning, match="the frame has no 'can_bus'"):
        result = inference_occ(model, {k: v for k, v in frame.items() if k != 'can_bus'})
    assert result['semantics'].shape == (200, 200, 16)
