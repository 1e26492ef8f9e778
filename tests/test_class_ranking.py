"""benchmarks/class_ranking.py: average precision and best-cut IoU worked by hand, the logit
shift, the voxels counted, and the counts it collects from a model equal those of the
model's own test-path argmax, also when the BEV is carried between frames."""
import numpy as np
import pytest
import torch

from occnet.datasets.collate import occ_collate
from occnet.descriptions import get_description
from occnet.registry import DATASETS, MODELS
from script_loader import load_script as load_benchmark_script
from test_apis import VIDEO, checkpoint, tiny_config  # noqa: F401  (the module fixture)

IGNORE = get_description('openscene').ignore_index


def load_script():
    return load_benchmark_script('benchmarks/class_ranking.py')


def test_ranking_stats_by_hand():
    stats = load_script().ranking_stats([0.9, 0.8, 0.7, 0.6], [True, False, True, False])
    # precision 1/1 at recall 1/2, 2/3 at recall 2/2: AP = (1 + 2/3) / 2
    assert stats['ap'] == pytest.approx(5 / 6)
    # cuts: top 1 -> 1/(1+2-1) = 1/2; top 2 -> 1/3; top 3 -> 2/(3+2-2) = 2/3; top 4 -> 2/4
    assert stats['best_iou'] == pytest.approx(2 / 3)
    assert stats['best_threshold'] == pytest.approx(0.7)


def test_tied_scores_are_cut_together():
    script = load_script()
    # one tie group of 2 in the class and 1 outside: the only cut takes all three, precision
    # 2/3 at recall 1. Index order (T, F, T) would give (1 + 2/3) / 2 = 5/6; outside voxels
    # first (F, T, T) 7/12
    stats = script.ranking_stats([0.5, 0.5, 0.5], [True, False, True])
    assert stats['ap'] == pytest.approx(2 / 3)
    assert stats['best_iou'] == pytest.approx(2 / 3)
    # a voxel outside ranked first, then a tie of one in and one out: precision 1/3 at
    # recall 1; index order (F, T, F) would give 1/2
    stats = script.ranking_stats([0.9, 0.5, 0.5], [False, True, False])
    assert stats['ap'] == pytest.approx(1 / 3)
    assert stats['best_iou'] == pytest.approx(1 / 3)
    assert stats['best_threshold'] == pytest.approx(0.5)
    assert script.ranking_stats([0.3, 0.2], [False, False]) == dict(
        ap=0.0, best_iou=0.0, best_threshold=None)


def test_shifted_counts_move_the_argmax_by_hand():
    # 3 classes, 4 voxels; class 0's logit margin to the best other class: -0.3, +0.1, -1, -0.1
    logits = torch.tensor([[0.0, 0.2, 0.0, 0.4],
                           [0.3, 0.0, 1.0, 0.0],
                           [0.0, 0.1, 0.0, 0.5]])
    target = torch.tensor([0, 1, 0, 0])
    counts = load_script().shifted_counts(logits, target, 0, [0.0, 0.25, 0.5, -0.5])
    # [tp, predicted, true]: 0 -> voxel 1 only; +0.25 -> 1, 3; +0.5 -> 0, 1, 3; -0.5 -> none
    assert counts.tolist() == [[0, 1, 3], [1, 2, 3], [2, 3, 3], [0, 0, 3]]
    assert load_script().percent([2, 3, 3]) == pytest.approx((50.0, 200 / 3, 200 / 3))


def test_counted_voxels_drop_the_ignore_label_and_hidden_voxels():
    target = torch.tensor([0, IGNORE, 3, 11, IGNORE])
    mask = torch.tensor([True, True, False, True, False])
    script = load_script()
    assert script.counted_voxels(target, IGNORE, mask).tolist() == [True, False, False, True,
                                                                    False]
    assert script.counted_voxels(target, IGNORE).tolist() == [True, False, True, True, False]


def expected_counts(cfg, checkpoint, classes, frames):  # noqa: F811  (test_apis' fixture)
    """[tp, predicted, true] of each class over the visible voxels of the first `frames`
    test frames, from the model's own prediction (test_step, frames in order)."""
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    expected, visible = np.zeros((len(classes), 3), dtype=np.int64), 0
    with torch.no_grad():
        for i in range(frames):
            batch = occ_collate([dataset[i]])
            pred = model.test_step(batch)[0]['occ_pred'].long().reshape(-1)
            sample = batch['data_samples'][0]
            target = sample['voxel_semantics'].long().reshape(-1)
            keep = sample['mask_camera'].bool().reshape(-1) & (target != IGNORE)
            visible += int(keep.sum())
            for row, c in enumerate(classes):
                p, t = pred[keep] == c, target[keep] == c
                expected[row] += [int((p & t).sum()), int(p.sum()), int(t.sum())]
    return expected, visible


@pytest.mark.parametrize('extra', [{}, VIDEO], ids=['frame', 'video'])
def test_collected_counts_are_the_models_argmax_on_visible_voxels(
        tiny_data_root, checkpoint, tmp_path, extra):  # noqa: F811  (test_apis' fixture)
    cfg = tiny_config(tiny_data_root, **extra)
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    classes = [0, 10]  # vehicle, background
    frames = 3  # in video mode frames 2 and 3 carry the BEV of the frame before
    scores, counts = load_script().collect(config, str(checkpoint), classes, [0.5], False,
                                           frames)
    expected, visible = expected_counts(cfg, checkpoint, classes, frames)
    for row, c in enumerate(classes):
        assert counts[c][0].tolist() == expected[row].tolist()
        assert len(scores[c][0]) == visible and scores[c][1].sum() == expected[row][2]
        assert ((scores[c][0] >= 0) & (scores[c][0] <= 1)).all()
        assert counts[c][1][1] >= counts[c][0][1]  # raising a logit only adds voxels
    assert expected[:, 1].sum() > 0  # the random classifier predicts these classes


def test_heads_without_a_free_logit_are_refused():
    class Losses:
        free_as_background = True

    class Head:
        losses = Losses()

    class Model:
        occ_head = Head()

    with pytest.raises(SystemExit, match='tiny.py: its occupancy loss gives free no logit'):
        load_script().refuse_unsupported(Model(), 'tiny.py')
    Losses.free_as_background = False
    load_script().refuse_unsupported(Model(), 'tiny.py')  # a free logit: accepted
