"""The synthetic Occ3D-nuScenes set end to end through the command-line tools (CPU):
tools/create_synthetic_occ3d.py -> tools/train.py -> tools/test.py (with SparseOcc's RayIoU)
-> tools/eval_occ.py --dataset occ3d, which must agree with the test's metrics."""
import sys

import pytest

from test_tools_e2e import read_metrics, run

CONFIG = 'configs/bevformer_occ/bevformer-occ-demo_r18-fpn_1xb1-3e_occ3d-synthetic.py'


def tiny_occ3d_options(data_root):
    """--cfg-options shrinking the Occ3D demo config to seconds on the tiny set."""
    root = f'{data_root}/'
    opts = []
    for split, name in (('train', 'train'), ('val', 'val'), ('test', 'val')):
        opts += [f'{split}_dataloader.dataset.data_root={root}',
                 f'{split}_dataloader.dataset.ann_file={root}occ_infos_temporal_{name}.pkl',
                 f'{split}_dataloader.num_workers=0']
    return opts + ['model.bev_encoder.bev_h=25', 'model.bev_encoder.bev_w=25',
                   'model.bev_encoder.embed_dims=16', 'model.bev_encoder.ffn_dims=32',
                   'model.img_neck.out_channels=16', 'model.occ_head.in_channels=16',
                   'model.occ_head.bev_h=25', 'model.occ_head.bev_w=25',
                   'model.occ_head.hidden_dims=4', 'train_cfg.max_epochs=1',
                   'default_hooks.logger.interval=2']


@pytest.fixture(scope='module')
def occ3d_root(tmp_path_factory):
    """2 logs x 3 frames of synthetic Occ3D (160x90 images), the second log held out."""
    root = tmp_path_factory.mktemp('occ3d-tiny')
    out = run([sys.executable, 'tools/create_synthetic_occ3d.py', '--out-dir', str(root),
               '--num-logs', '2', '--frames-per-log', '3', '--frames-per-scene', '3',
               '--image-size', '160', '90', '--val-logs', '1'])
    assert '6 frames (3 train, 3 val)' in out
    return root


def test_synthetic_occ3d_trains_tests_and_matches_eval_occ(occ3d_root, tmp_path):
    options = tiny_occ3d_options(occ3d_root)
    run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
         *options])
    checkpoint = tmp_path / 'epoch_1.pth'
    assert checkpoint.is_file()
    out_dir = tmp_path / 'test'
    log = run([sys.executable, 'tools/test.py', CONFIG, str(checkpoint), '--out-dir',
               str(out_dir), '--work-dir', str(tmp_path), '--cfg-options', *options,
               'test_evaluator.ray_iou=True'])
    assert 'protocol mIoU' in log
    metrics = read_metrics(out_dir / 'metrics.json')
    # 17 evaluated classes by the Occ3D names, and the protocol's mIoU is the masked one
    assert len(metrics['per_class']) == 17 and 'driveable_surface' in metrics['per_class']
    assert metrics['protocol_miou'] == metrics['miou_masked']
    assert sorted(p.name for p in (out_dir / 'predictions').iterdir()) == sorted(
        f'{token}.npz' for token in metrics_tokens(occ3d_root))
    run([sys.executable, 'tools/eval_occ.py', '--dataset', 'occ3d', '--data-root',
         str(occ3d_root), '--infos', str(occ3d_root / 'occ_infos_temporal_val.pkl'),
         '--pred-dir', str(out_dir / 'predictions'), '--out-json', str(out_dir / 'eval.json'),
         '--ray-iou'])
    offline = read_metrics(out_dir / 'eval.json')
    # the same two protocols offline: Occ3D's masked mIoU and SparseOcc's RayIoU (its fan
    # and origins, depth where the ray leaves the voxel)
    assert offline['miou'] == pytest.approx(metrics['protocol_miou'], abs=1e-9)
    assert offline['per_class'] == pytest.approx(metrics['per_class_masked'], abs=1e-9)
    for key in ('ray_iou', 'ray_iou@1m', 'ray_iou@2m', 'ray_iou@4m'):
        assert offline[key] == pytest.approx(metrics[key], abs=1e-9), key


def metrics_tokens(root):
    """Tokens of the held-out frames."""
    import pickle
    with open(root / 'occ_infos_temporal_val.pkl', 'rb') as f:
        return [frame['token'] for frame in pickle.load(f)['infos']]
