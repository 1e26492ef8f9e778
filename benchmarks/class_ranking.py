"""Does a trained model find a class in the wrong places, or in the right places with the
wrong cut? The class's voxel scores on the held-out frames, apart from the argmax.

    python benchmarks/class_ranking.py CONFIG CKPT [--classes vehicle pedestrian]
        [--bias -0.5 -0.25 0.25 0.5] [--all-voxels] [--frames N]

For each class, over the test set's camera-visible voxels (every voxel with --all-voxels;
the dataset's ignore label never counts):
- `iou`, `precision`, `recall` (%): of the argmax prediction, as the metric scores it;
- `ap` (%): average precision of the class's softmax probability used as a voxel score, a
  measure of where the model puts the class that no threshold changes;
- `best_iou` (%) and `best_threshold`: the highest IoU that any single cut on that
  probability reaches, and the cut;
- `bias`: IoU, precision and recall when the class's logit is shifted by each `--bias`
  before the argmax (a miscalibrated model gains; a mislocalised one does not).
A model whose `best_iou` is close to its argmax IoU and whose AP is low puts the class in
the wrong voxels: a loss weight or a threshold will not fix it. (The argmax is not a cut on
one class's probability, so its IoU can exceed `best_iou`.) The logits are those the test
path argmaxes (`model.test_step`, frames in order); heads without a free logit are refused.
Progress with an ETA goes to stderr; the last line of stdout is JSON.
"""
import argparse
import json

import numpy as np
import torch


def ranking_stats(scores, positives):
    """Average precision and best single-threshold IoU of a score ranking.

    Args:
        scores: (P,) float scores, higher means more likely in the class.
        positives: (P,) bool, True where the voxel is in the class.
    Returns:
        dict: `ap` (area under the precision-recall steps, one step per distinct score, so
        tied scores are cut together), `best_iou` (max over cuts `score >= t` of
        TP / (predicted + true - TP)) and `best_threshold` (that t); fractions in [0, 1].
        0 (threshold None) when the class has no voxel.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    total = int(positives.sum())
    if total == 0:
        return dict(ap=0.0, best_iou=0.0, best_threshold=None)
    order = np.argsort(-scores, kind='stable')
    ranked, hits = scores[order], positives[order]
    tp = np.cumsum(hits)
    group_end = np.r_[ranked[1:] != ranked[:-1], True]  # last voxel of each tied score
    tp, predicted, cut = tp[group_end], np.flatnonzero(group_end) + 1, ranked[group_end]
    recall_step = np.diff(np.r_[0, tp]) / total
    ap = float((recall_step * tp / predicted).sum())
    iou = tp / (predicted + total - tp)
    best = int(iou.argmax())
    return dict(ap=ap, best_iou=float(iou[best]), best_threshold=float(cut[best]))


def shifted_counts(logits, target, class_index, biases):
    """(len(biases), 3) int64 [true positive, predicted, true] voxel counts of one class
    when its logit is raised by each bias: logits (K, V), target (V,) long."""
    counts = np.zeros((len(biases), 3), dtype=np.int64)
    truth = target == class_index
    for row, bias in enumerate(biases):
        shifted = logits.clone()
        shifted[class_index] += bias
        pred = shifted.argmax(0) == class_index
        counts[row] = [int((pred & truth).sum()), int(pred.sum()), int(truth.sum())]
    return counts


def percent(counts):
    """[tp, predicted, true] -> (IoU, precision, recall) in %; 0 where the denominator is 0
    (the metric reports None there)."""
    tp, predicted, true = (float(c) for c in counts)
    return (100 * tp / max(predicted + true - tp, 1), 100 * tp / max(predicted, 1),
            100 * tp / max(true, 1))


def counted_voxels(target, ignore_index, mask_camera=None):
    """(V,) bool: the voxels the metric counts. target (V,) labels; mask_camera (V,) bool
    (True where a camera sees the voxel) or None for every voxel; the ignore label never
    counts (occupancy_metrics.confusion_matrix)."""
    keep = target != ignore_index
    return keep if mask_camera is None else keep & mask_camera.bool()


def refuse_unsupported(model, config):
    """SystemExit naming the config when its head has no free logit: there the prediction
    is a sigmoid threshold, not the softmax argmax this script ranks and shifts."""
    if getattr(getattr(model.occ_head, 'losses', None), 'free_as_background', False):
        raise SystemExit(f'{config}: its occupancy loss gives free no logit (OccupiedFocalLoss),'
                         ' so its prediction is a sigmoid threshold, not a softmax argmax; '
                         'class_ranking.py supports heads with a free logit only')


def collect(config, checkpoint, class_indices, biases, all_voxels, max_frames):
    """Run the checkpoint over the test set, frame by frame in order, through its test path
    (model.test_step: the history frames of a queue, or the BEV carried between frames in
    video_test_mode, as tools/test.py runs it); the logits are the occupancy head's output
    that the prediction argmaxes. Returns ({class: [scores, positives]} over the counted
    voxels, {class: (len(biases) + 1, 3) counts}, the first row unshifted)."""
    from mmengine.registry import init_default_scope

    from occnet.apis import init_model
    from occnet.datasets.collate import occ_collate
    from occnet.descriptions import get_description
    from occnet.progress import Progress
    from occnet.registry import DATASETS
    model = init_model(config, checkpoint, device='cpu')
    refuse_unsupported(model, config)
    init_default_scope('occnet')
    dataset = DATASETS.build(model.cfg.test_dataloader.dataset)
    ignore = get_description(dataset.metainfo).ignore_index
    head_out = []
    hook = model.occ_head.register_forward_hook(lambda module, args, out: head_out.append(out))
    scores = {c: ([], []) for c in class_indices}
    counts = {c: np.zeros((len(biases) + 1, 3), dtype=np.int64) for c in class_indices}
    frames = len(dataset) if max_frames is None else min(max_frames, len(dataset))
    progress = Progress('class_ranking', 'frames')
    try:
        with torch.no_grad():
            for frame in range(frames):
                batch = occ_collate([dataset[frame]])
                head_out.clear()
                model.test_step(batch)
                if len(head_out) != 1 or not isinstance(head_out[0], torch.Tensor):
                    raise SystemExit(f'{config}: expected one logits tensor from the occupancy '
                                     f'head per frame, got {len(head_out)} outputs')
                sample = batch['data_samples'][0]
                target = sample['voxel_semantics'].long().reshape(-1)
                mask = None
                if not all_voxels:
                    if 'mask_camera' not in sample:
                        raise SystemExit(f'{config}: frame {sample["token"]} has no '
                                         'mask_camera; add occ_invalid_path to the infos or '
                                         'pass --all-voxels')
                    mask = sample['mask_camera'].reshape(-1)
                keep = counted_voxels(target, ignore, mask)
                logits = head_out[0][0].float()
                logits = logits.reshape(logits.shape[0], -1)[:, keep]
                target = target[keep]
                probs = logits.softmax(0)
                for c in class_indices:
                    scores[c][0].append(probs[c].numpy())
                    scores[c][1].append((target == c).numpy())
                    counts[c] += shifted_counts(logits, target, c, [0.0] + list(biases))
                progress(frame + 1, frames)
    finally:
        hook.remove()
    return {c: [np.concatenate(s) for s in scores[c]] for c in class_indices}, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--classes', nargs='+', default=['vehicle'],
                        help="class names of the config's dataset")
    parser.add_argument('--bias', nargs='*', type=float, default=[-0.5, -0.25, 0.25, 0.5])
    parser.add_argument('--all-voxels', action='store_true',
                        help='count every voxel, not only those a camera sees')
    parser.add_argument('--frames', type=int, help='only the first N test frames')
    args = parser.parse_args()

    from mmengine.config import Config

    from occnet.descriptions import get_description
    names = get_description(Config.fromfile(args.config).model.get(
        'dataset', 'openscene')).class_names
    unknown = [c for c in args.classes if c not in names]
    if unknown:
        raise SystemExit(f'unknown class {unknown}; the dataset has {list(names)}')
    indices = [names.index(c) for c in args.classes]
    scores, counts = collect(args.config, args.checkpoint, indices, args.bias,
                             args.all_voxels, args.frames)
    result = dict(config=args.config, checkpoint=args.checkpoint,
                  voxels='all' if args.all_voxels else 'visible', classes={})
    for name, c in zip(args.classes, indices):
        stats = ranking_stats(*scores[c])
        iou, precision, recall = percent(counts[c][0])
        entry = dict(iou=iou, precision=precision, recall=recall, ap=100 * stats['ap'],
                     best_iou=100 * stats['best_iou'], best_threshold=stats['best_threshold'],
                     bias={})
        cut = stats['best_threshold']
        print(f'{name}: IoU {iou:.2f} (precision {precision:.1f}, recall {recall:.1f}), '
              f'AP {entry["ap"]:.1f}, best-cut IoU {entry["best_iou"]:.2f}'
              + ('' if cut is None else f' at p >= {cut:.3f}'))
        for bias, row in zip(args.bias, counts[c][1:]):
            shifted = dict(zip(('iou', 'precision', 'recall'), percent(row)))
            entry['bias'][f'{bias:+g}'] = shifted
            print(f'  logit {bias:+g}: IoU {shifted["iou"]:.2f} (precision '
                  f'{shifted["precision"]:.1f}, recall {shifted["recall"]:.1f})')
        result['classes'][name] = entry
    print(json.dumps(result))


if __name__ == '__main__':
    main()
