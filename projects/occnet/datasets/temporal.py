"""Temporal structure of a frame list: previous-frame links, training queues, ego motion.

Pure functions over arrays so they can be tested with hand-made inputs.
"""
import numpy as np


def link_previous(scene_tokens, timestamps_us, max_gap_s=1.25):
    """Index of each frame's previous frame in its scene, or -1.

    The previous frame is the latest earlier frame of the same scene, if it is at most
    `max_gap_s` seconds older (OpenScene key frames are 0.5 s apart: one dropped frame leaves
    a 1 s gap and still links, two leave 1.5 s and break the chain). `sample_prev` tokens are
    not used: the release sets them to None where a frame was dropped.

    Args:
        scene_tokens: (L,) scene token per frame, any order.
        timestamps_us: (L,) int microseconds.
    Returns:
        prev: (L,) int64.
        scene_ids: (L,) int64, equal for frames of one scene (ids follow first appearance).
    """
    timestamps_us = np.asarray(timestamps_us, dtype=np.int64)
    uniques, first, scene_ids = np.unique(np.asarray(scene_tokens), return_index=True,
                                          return_inverse=True)
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[np.argsort(first, kind='stable')] = np.arange(len(uniques))
    scene_ids = rank[scene_ids.reshape(-1)]
    prev = np.full(len(timestamps_us), -1, dtype=np.int64)
    order = np.lexsort((timestamps_us, scene_ids))
    same_scene = scene_ids[order[1:]] == scene_ids[order[:-1]]
    gap_ok = timestamps_us[order[1:]] - timestamps_us[order[:-1]] <= max_gap_s * 1e6
    linked = same_scene & gap_ok
    prev[order[1:][linked]] = order[:-1][linked]
    return prev, scene_ids


def history_chain(prev, idx, length):
    """Up to `length` previous frames of `idx` following `prev`, nearest first."""
    chain = []
    cur = int(prev[idx])
    while cur >= 0 and len(chain) < length:
        chain.append(cur)
        cur = int(prev[cur])
    return chain


def next_indices(prev):
    """(L,) int64 index of each frame's next frame (the inverse of `prev`), or -1."""
    prev = np.asarray(prev, dtype=np.int64)
    nxt = np.full(len(prev), -1, dtype=np.int64)
    linked = np.flatnonzero(prev >= 0)
    nxt[prev[linked]] = linked
    return nxt


def scene_neighbours(prev, nxt, idx, count):
    """Up to `count` linked frames before `idx` and `count` after it, in time order."""
    return history_chain(prev, idx, count)[::-1] + history_chain(nxt, idx, count)


def sample_queue(prev, idx, queue_length, window=None, rng=None):
    """Frames of a training queue, oldest first, ending with `idx`.

    The queue_length - 1 history frames are drawn at random (without replacement, kept in
    time order) from the `window` frames before `idx` in its scene, as BEVFormer's training
    does; window = queue_length - 1 (or rng None) takes the nearest frames. Where the scene
    has too few earlier frames, the oldest available one is repeated and marked invalid.

    Returns:
        indices: list of queue_length dataset indices.
        valid: list of bools, False for padded slots.
    """
    num_history = queue_length - 1
    window = num_history if window is None else max(int(window), num_history)
    chain = history_chain(prev, idx, window)
    if rng is not None and len(chain) > num_history:
        picked = sorted(rng.choice(len(chain), size=num_history, replace=False))
        chain = [chain[i] for i in picked]
    else:
        chain = chain[:num_history]
    history = chain[::-1]
    pad = num_history - len(history)
    first = history[0] if history else idx
    return [first] * pad + history + [idx], [False] * pad + [True] * len(history) + [True]


def yaw_of(ego2global):
    """Heading (rad) of a (4, 4) ego -> global pose: the angle of its x axis in the x-y plane."""
    return float(np.arctan2(ego2global[1, 0], ego2global[0, 0]))


def can_bus_with_deltas(can_bus, ego2global, prev_ego2global=None):
    """A frame's (18,) can_bus in BEVFormer's temporal convention.

    [0:3] translation of the ego since the previous frame (m, global frame; 0 without one),
    [3:7] ego2global quaternion as stored, [7:16] as stored, [16] heading (rad), [17] heading
    change since the previous frame (degrees, wrapped to [-180, 180); 0 without one).
    """
    out = np.asarray(can_bus, dtype=np.float64).copy()
    yaw = yaw_of(ego2global)
    out[16] = yaw
    if prev_ego2global is None:
        out[:3] = 0.0
        out[17] = 0.0
    else:
        out[:3] = ego2global[:3, 3] - prev_ego2global[:3, 3]
        delta = np.degrees(yaw - yaw_of(prev_ego2global))
        out[17] = (delta + 180.0) % 360.0 - 180.0
    return out.astype(np.float32)
