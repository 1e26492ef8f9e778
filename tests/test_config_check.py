"""Config mistakes are reported with the key path and the fix before anything is built."""
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from occnet.engine.config_check import ConfigError, accepted_arguments, check_config
from occnet.engine.launch import load_config
from test_tools_e2e import CONFIG

DEMO = os.path.join(REPO_ROOT, CONFIG)


def problems(options, tmp_path, sections=('train_dataloader',)):
    root = str(tmp_path)  # an existing folder: only the deliberate mistake is reported
    cfg = load_config(DEMO, {'train_dataloader.dataset.data_root': root, **options})
    with pytest.raises(ConfigError) as err:
        check_config(cfg, sections)
    return str(err.value)


def test_shipped_demo_config_passes(tmp_path):
    check_config(load_config(DEMO, {'train_dataloader.dataset.data_root': str(tmp_path)}),
                 ('train_dataloader',))


def test_unknown_type_lists_the_closest_registered_names(tmp_path):
    message = problems({'model.img_backbone.type': 'TorchvisionResNett'}, tmp_path)
    assert "model.img_backbone.type: 'TorchvisionResNett' is not a registered model" in message
    assert "'TorchvisionResNet'" in message


def test_misspelled_model_key_names_the_closest_argument(tmp_path):
    message = problems({'model.bev_encoder.num_layer': 2}, tmp_path)
    assert ("model.bev_encoder.num_layer: BEVFormerEncoder has no argument 'num_layer' "
            "(did you mean 'num_layers'?)") in message


def test_misspelled_dataset_and_pipeline_keys(tmp_path):
    message = problems({'train_dataloader.dataset.queue_lenght': 3,
                        'train_dataloader.dataset.pipeline': [
                            dict(type='LoadMultiViewImages', decode_scal=0.5)]}, tmp_path)
    assert "(did you mean 'queue_length'?)" in message
    assert ("train_dataloader.dataset.pipeline[0].decode_scal: LoadMultiViewImages has no "
            "argument 'decode_scal' (did you mean 'decode_scale'?)") in message


def test_dataset_keys_of_the_base_class_are_accepted():
    from occnet.datasets.openscene_dataset import OpenSceneOccDataset
    accepted = accepted_arguments(OpenSceneOccDataset)
    assert {'queue_length', 'ann_file', 'serialize_data', 'lazy_init'} <= accepted


def test_wrong_data_root_names_the_path_and_the_fix(tmp_path):
    missing = str(tmp_path / 'no-such-openscene')
    result = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir',
                             str(tmp_path / 'work'), '--cfg-options',
                             f'train_dataloader.dataset.data_root={missing}'],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert (f'train_dataloader.dataset.data_root: {missing} does not exist' in result.stderr)
    assert 'docs/data.md' in result.stderr


def test_ray_origins_are_loaded_only_for_ray_iou():
    # the test samples carry RayIoU's origins when the evaluator casts rays, not otherwise
    plain = load_config(os.path.join(REPO_ROOT, CONFIG))
    assert not plain.test_dataloader.dataset.get('with_ray_origins', False)
    rays = load_config(os.path.join(REPO_ROOT, CONFIG), {'test_evaluator.ray_iou': True})
    assert rays.test_dataloader.dataset.with_ray_origins is True
    assert not rays.train_dataloader.dataset.get('with_ray_origins', False)


@pytest.mark.parametrize('name', ['openscene', 'occ3d'])
def test_the_demo_evaluates_once(name):
    # mmengine validates a run's last epoch whatever val_interval says; the demo tests with
    # tools/test.py afterwards, so its training loop must never reach val_begin
    cfg = load_config(os.path.join(
        REPO_ROOT, f'configs/bevformer_occ/bevformer-occ-demo_r18-fpn_1xb1-3e_{name}-synthetic.py'))
    assert cfg.train_cfg.val_begin > cfg.train_cfg.max_epochs
