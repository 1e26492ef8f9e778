"""benchmarks/class_ranking.py: average precision and best-cut IoU worked by hand, the logit
shift, and the counts it collects from a model equal those of the model's own argmax."""
import importlib.util
import os

import numpy as np
import pytest
import torch

from occnet.datasets.collate import occ_collate
from occnet.registry import DATASETS, MODELS
from test_apis import checkpoint, tiny_config  # noqa: F401  (the module-scoped fixture)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script():
    path = os.path.join(REPO_ROOT, 'benchmarks', 'class_ranking.py')
    spec = importlib.util.spec_from_file_location('class_ranking', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ranking_stats_by_hand():
    stats = load_script().ranking_stats([0.9, 0.8, 0.7, 0.6], [True, False, True, False])
    # precision 1/1 at recall 1/2, 2/3 at recall 2/2: AP = (1 + 2/3) / 2
    assert stats['ap'] == pytest.approx(5 / 6)
    # cuts: top 1 -> 1/(1+2-1) = 1/2; top 2 -> 1/3; top 3 -> 2/(3+2-2) = 2/3; top 4 -> 2/4
    assert stats['best_iou'] == pytest.approx(2 / 3)
    assert stats['best_threshold'] == pytest.approx(0.7)


def test_tied_scores_are_cut_together():
    # 0.5 holds one voxel in the class and one outside: no cut separates them, so the
    # ranking cannot reach precision 1 at recall 1 (it would if the tie were broken by index)
    stats = load_script().ranking_stats([0.9, 0.5, 0.5], [False, True, False])
    assert stats['ap'] == pytest.approx(1 / 3)
    assert stats['best_iou'] == pytest.approx(1 / 3)
    assert stats['best_threshold'] == pytest.approx(0.5)
    assert load_script().ranking_stats([0.3, 0.2], [False, False])['ap'] == 0.0


def test_shifted_counts_move_the_argmax_by_hand():
    # 3 classes, 4 voxels; class 0's logit margin to the best other class: -0.3, +0.2, -1, -0.1
    logits = torch.tensor([[0.0, 0.2, 0.0, 0.4],
                           [0.3, 0.0, 1.0, 0.0],
                           [0.0, 0.1, 0.0, 0.5]])
    target = torch.tensor([0, 1, 0, 0])
    counts = load_script().shifted_counts(logits, target, 0, [0.0, 0.25, 0.5, -0.5])
    # [tp, predicted, true]: 0 -> voxel 1 only; +0.25 -> 1, 3; +0.5 -> 0, 1, 3; -0.5 -> none
    assert counts.tolist() == [[0, 1, 3], [1, 2, 3], [2, 3, 3], [0, 0, 3]]
    assert load_script().percent([2, 3, 3]) == pytest.approx((50.0, 200 / 3, 200 / 3))


def test_collected_counts_are_the_models_argmax_on_visible_voxels(
        tiny_data_root, checkpoint, tmp_path):  # noqa: F811  (test_apis' fixture)
    cfg = tiny_config(tiny_data_root)
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    script = load_script()
    classes = [0, 10]  # vehicle, background
    scores, counts = script.collect(config, str(checkpoint), classes, [0.5], False, 2)
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    expected = np.zeros((len(classes), 3), dtype=np.int64)
    visible = 0
    with torch.no_grad():
        for i in range(2):
            batch = occ_collate([dataset[i]])
            pred = model.test_step(batch)[0]['occ_pred'].long().reshape(-1)
            sample = batch['data_samples'][0]
            target = sample['voxel_semantics'].long().reshape(-1)
            keep = sample['mask_camera'].bool().reshape(-1) & (target != 255)
            visible += int(keep.sum())
            for row, c in enumerate(classes):
                p, t = pred[keep] == c, target[keep] == c
                expected[row] += [int((p & t).sum()), int(p.sum()), int(t.sum())]
    for row, c in enumerate(classes):
        assert counts[c][0].tolist() == expected[row].tolist()
        assert len(scores[c][0]) == visible and scores[c][1].sum() == expected[row][2]
        assert ((scores[c][0] >= 0) & (scores[c][0] <= 1)).all()
    # raising a class's logit can only add voxels to it
    assert counts[0][1][1] >= counts[0][0][1] and counts[10][1][1] >= counts[10][0][1]
    assert expected[:, 1].sum() > 0  # the random classifier predicts these classes
