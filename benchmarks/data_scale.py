"""Metadata at trainval scale: collect_data time, the dataset init of every rank of a node,
and dataloader-worker memory.

    python benchmarks/data_scale.py --work-dir /tmp/openscene-scale --logs 1000 --frames 400
    python benchmarks/data_scale.py --work-dir /tmp/openscene-scale --ranks 8 [--baseline-ranks 2]

1. Writes metadata only (no images or labels) for LOGS logs x FRAMES frames in the release
   layout: one v1.1 pickle per log with full frame dicts (anns, lidar, traffic lights...)
   cloned from a synthetic frame, ~12.7 kB per frame as pickled, and the v1.0 split pickle
   with each frame's ids, poses and label paths (its cams / anns are left out here: holding
   400k full frames in memory twice would not fit this machine); 1.5% of frames get no
   v1.0 label.
2. Times `tools/collect_data.py` on it (wall time and peak resident memory of the process);
   with --ranks, infos already collected are reused.
With --ranks R (steps 3 and 4 are then skipped):
   R ranks start together as separate processes, as torchrun starts them on one node. Each
   imports torch, mmengine and occnet, and measures its private memory (Private_Clean +
   Private_Dirty of /proc/self/smaps_rollup); when all are ready they build
   OpenSceneOccDataset on the train infos at the same moment. Each reports its init seconds
   and the growth of its private memory across the init, then reads 2,000 random samples'
   metadata and reports the growth again, and the growth of its anonymous memory (its own
   heap, as opposed to pages of the mapped file, which the page cache holds once for the
   node however many ranks map them; they count as Private_Clean while only one process
   maps them). Three runs:
   - `cold`: no metadata cache beside the infos: one rank builds it, the others wait and map
     it (what the first run on a new infos file costs);
   - `warm`: the cache exists, every rank maps it (every later run);
   - `baseline`: --baseline-ranks ranks with metadata_cache=False, each parsing the infos
     itself (occnet before the cache); 8 of them would need 8 x 4 GB, more than this
     machine has.
   The last line is JSON with `dataset_init_s` (the slowest warm rank) and
   `private_mb_per_rank` (the largest warm growth), and the three runs in full.
3. Builds OpenSceneOccDataset on the train infos and reads samples' metadata (the temporal
   queue and each frame's info, everything but image and label I/O) through a DataLoader with
   4 workers, then reports each worker's private resident memory (USS: pages the worker does
   not share with the main process) before and after reading. Three ways of holding the
   metadata are measured (VARIANTS): the mapped metadata cache (occnet's default), one
   serialized buffer per process (mmengine's serialize_data, occnet before the cache) and
   a plain list of dicts (serialize_data=False, the usual way).
The last line is JSON with all numbers.
"""
import argparse
import io
import json
import os
import pickle
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from occnet.peak_memory import status_mb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--logs', type=int, default=1000)
    parser.add_argument('--frames', type=int, default=400, help='frames per log')
    parser.add_argument('--workers', type=int, default=4, help='dataloader workers')
    parser.add_argument('--samples', type=int, default=20000,
                        help='samples each measurement reads through the dataloader')
    parser.add_argument('--ranks', type=int, default=0,
                        help='start this many ranks together and measure their dataset init')
    parser.add_argument('--baseline-ranks', type=int, default=1,
                        help='with --ranks: ranks of the run without the metadata cache')
    parser.add_argument('--rank-worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--ann-file', help=argparse.SUPPRESS)
    parser.add_argument('--no-cache', action='store_true', help=argparse.SUPPRESS)
    return parser.parse_args()


def template_frame(work_dir):
    """A full v1.1 frame dict from a one-frame synthetic log."""
    from occnet.datasets.synthetic import generate_dataset
    root = os.path.join(work_dir, 'template')
    generate_dataset(root, num_logs=1, frames_per_log=1, image_size=(32, 18), seed=0, log=None)
    meta = os.path.join(root, 'openscene-v1.1', 'meta_datas', 'mini')
    with open(os.path.join(meta, os.listdir(meta)[0]), 'rb') as f:
        return pickle.load(f)[0]


def frame_copies(template, count):
    """`count` independent deep copies of a frame dict (fast: one unpickle of a memo-less
    pickle that writes the template `count` times)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=4)
    pickler.fast = True
    pickler.dump([template] * count)
    return pickle.loads(buffer.getvalue())


V10_KEYS = ('token', 'frame_idx', 'timestamp', 'log_name', 'log_token', 'scene_token',
            'scene_name', 'can_bus', 'ego2global', 'lidar2ego', 'lidar2global')


def build_metadata(root, num_logs, num_frames, template):
    """The release layout's metadata for num_logs x num_frames frames (no sensor files):
    full v1.1 frames; v1.0 frames with ids, poses and label paths (cams / anns left out)."""
    rng = np.random.default_rng(0)
    meta_dir = os.path.join(root, 'openscene-v1.1', 'meta_datas', 'trainval')
    os.makedirs(meta_dir, exist_ok=True)
    v10_dir = os.path.join(root, 'openscene-v1.0', 'meta_datas')
    os.makedirs(v10_dir, exist_ok=True)
    v10_infos, start = [], time.time()
    for log_idx in range(num_logs):
        log_name = f'2021.06.{log_idx % 28 + 1:02d}.12.00.00_veh-35_{log_idx:05d}_{log_idx:05d}'
        frames = frame_copies(template, num_frames)
        for k, frame in enumerate(frames):
            token = rng.bytes(8).hex()
            scene = k // 40
            frame.update(token=token, frame_idx=k % 40, log_name=log_name,
                         timestamp=1_620_000_000_000_000 + log_idx * 10**10 + k * 500_000,
                         scene_token=f'{log_idx:08x}{scene:08x}',
                         scene_name=f'log-{log_idx:04d}-scene-{scene:04d}',
                         sample_prev=frames[k - 1]['token'] if k % 40 else None,
                         lidar_path=f'{log_name}/MergedPointCloud/{token}.pcd')
            for cam, info in frame['cams'].items():
                info['data_path'] = f'{log_name}/{cam}/{token}.jpg'
            if rng.random() > 0.015:
                folder = f'occupancy/trainval/{frame["scene_name"]}/occ_gt/{k % 40:03d}'
                v10_infos.append({**{key: frame[key] for key in V10_KEYS},
                                  'occ_gt_final_path': f'{folder}_occ_final.npy',
                                  'flow_gt_final_path': f'{folder}_flow_final.npy',
                                  'occ_invalid_path': f'{folder}_occ_invalid.npy'})
        with open(os.path.join(meta_dir, f'{log_name}.pkl'), 'wb') as f:
            pickle.dump(frames, f, protocol=4)
        if (log_idx + 1) % 50 == 0:
            print(f'[build] logs {log_idx + 1}/{num_logs} | {time.time() - start:.0f} s',
                  file=sys.stderr, flush=True)
    with open(os.path.join(v10_dir, 'meta_data_trainval.pkl'), 'wb') as f:
        pickle.dump({'infos': v10_infos, 'metadata': {'version': 'v1.0-trainval'}}, f,
                    protocol=4)


def run_collect(root):
    """Wall seconds and peak RSS (MB) of tools/collect_data.py on the trainval split."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.time()
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'collect_data.py'),
                           '--data-root', root, '--split', 'trainval', '--out-dir', root],
                          capture_output=True, text=True)
    seconds = time.time() - start
    print(proc.stdout + proc.stderr[-2000:], file=sys.stderr)
    if proc.returncode:
        sys.exit('collect_data.py failed')
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024.0, proc.stdout


class MetadataOnly(Dataset):
    """What a worker does per sample apart from image / label I/O: the temporal queue and the
    info dicts of its frames."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        indices, _ = self.dataset.queue_indices(idx)
        infos = [self.dataset.get_data_info(i) for i in indices]
        return sum(len(info['img_paths']) for info in infos)


def private_mb(pid, fields=('Private_Clean:', 'Private_Dirty:')):
    """Private (unshared) resident memory of a process in MB, from /proc/<pid>/smaps_rollup
    (the sum of `fields`; ('Anonymous:',) gives the process's own heap and stacks)."""
    total = 0
    with open(f'/proc/{pid}/smaps_rollup') as f:
        for line in f:
            if line.startswith(fields):
                total += int(line.split()[1])
    return total / 1024.0


def anonymous_mb(pid):
    """Anonymous resident memory in MB: what a process holds of its own, not file pages."""
    return private_mb(pid, ('Anonymous:',))


VARIANTS = dict(  # how the dataset holds its metadata
    mapped_columns=dict(metadata_cache=True),  # occnet's default: the cache beside the infos
    serialized=dict(metadata_cache=False, serialize_data=True),  # one buffer per process
    list_of_dicts=dict(metadata_cache=False, serialize_data=False))  # the usual way


def measure_workers(root, variant, num_workers, num_samples):
    """Build the dataset, read num_samples shuffled samples with persistent workers and
    return the main process RSS and each worker's private MB after start-up and after
    reading."""
    from mmengine.registry import init_default_scope
    import occnet.datasets  # noqa: F401
    from occnet.registry import DATASETS
    init_default_scope('occnet')
    start = time.time()
    dataset = DATASETS.build(dict(type='OpenSceneOccDataset', data_root=root,
                                  ann_file=os.path.join(root, 'openscene_trainval_train.pkl'),
                                  queue_length=3, queue_window=3, **VARIANTS[variant]))
    build_s = time.time() - start
    loader = DataLoader(MetadataOnly(dataset), batch_size=16, shuffle=True,
                        num_workers=num_workers, persistent_workers=True,
                        generator=torch.Generator().manual_seed(0))
    iterator = iter(loader)
    next(iterator)
    pids = [w.pid for w in iterator._workers]
    after_start = [private_mb(pid) for pid in pids]
    read = 16
    start = time.time()
    while read < num_samples:
        next(iterator)
        read += 16
    read_s = time.time() - start
    after_read = [private_mb(pid) for pid in pids]
    result = dict(variant=variant, frames=len(dataset), build_s=round(build_s, 1),
                  main_rss_mb=round(status_mb('VmRSS'), 0), samples_read=read,
                  samples_per_s=round(read / read_s, 0),
                  worker_private_mb_after_start=[round(v, 1) for v in after_start],
                  worker_private_mb_after_read=[round(v, 1) for v in after_read])
    del iterator, loader
    return result


def rank_worker(root, ann_file, use_cache):
    """One rank (a process of its own): imports, then waits for 'go' on stdin, builds the
    dataset and prints one JSON line with its init seconds and private-memory growth."""
    import gc
    from mmengine.registry import init_default_scope
    import occnet.datasets  # noqa: F401
    from occnet.registry import DATASETS
    init_default_scope('occnet')
    gc.collect()
    pid = os.getpid()
    before, anon_before = private_mb(pid), anonymous_mb(pid)
    print('ready', flush=True)
    sys.stdin.readline()
    start = time.time()
    dataset = DATASETS.build(dict(type='OpenSceneOccDataset', data_root=root, ann_file=ann_file,
                                  queue_length=3, queue_window=3,
                                  metadata_cache=use_cache))
    init_s = time.time() - start
    after_init, anon_after_init = private_mb(pid), anonymous_mb(pid)
    rng = np.random.default_rng(pid)
    for idx in rng.integers(0, len(dataset), 2000):
        indices, _ = dataset.queue_indices(int(idx))
        for i in indices:
            dataset.get_data_info(i)
    print(json.dumps(dict(init_s=round(init_s, 2), frames=len(dataset),
                          private_mb_before=round(before, 1),
                          init_growth_mb=round(after_init - before, 1),
                          anonymous_init_growth_mb=round(anon_after_init - anon_before, 1),
                          growth_after_2000_samples_mb=round(private_mb(pid) - before, 1),
                          anonymous_growth_after_2000_samples_mb=round(
                              anonymous_mb(pid) - anon_before, 1),
                          peak_rss_mb=round(status_mb('VmHWM'), 0),
                          mapped=dataset.frames is not None)), flush=True)


def start_ranks(root, ann_file, ranks, use_cache):
    """Start `ranks` rank processes, release them together once all have imported, and
    return their reports."""
    command = [sys.executable, os.path.abspath(__file__), '--rank-worker', '--work-dir', root,
               '--ann-file', ann_file] + ([] if use_cache else ['--no-cache'])
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(ranks)]
    for proc in procs:
        line = proc.stdout.readline()
        if line.strip() != 'ready':
            sys.exit(f'a rank failed to start: {line}')
    for proc in procs:
        proc.stdin.write('go\n')
        proc.stdin.flush()
    reports = []
    for proc in procs:
        out, _ = proc.communicate()
        lines = out.strip().splitlines()
        print('\n'.join(lines[:-1]), file=sys.stderr)  # the rank's log
        if proc.returncode:
            sys.exit(f'a rank failed (exit {proc.returncode})')
        reports.append(json.loads(lines[-1]))
    return dict(ranks=ranks, metadata_cache=use_cache,
                dataset_init_s=max(r['init_s'] for r in reports),
                private_mb_per_rank=max(r['init_growth_mb'] for r in reports),
                anonymous_mb_per_rank_after_2000_samples=max(
                    r['anonymous_growth_after_2000_samples_mb'] for r in reports),
                per_rank=reports)


def measure_ranks(root, ranks, baseline_ranks):
    """The cold, warm and baseline runs of --ranks (docstring)."""
    from occnet.datasets.metadata_cache import SUFFIX
    ann_file = os.path.join(root, 'openscene_trainval_train.pkl')
    for name in os.listdir(root):
        if name.startswith('openscene_trainval_train.pkl.') and name.endswith(SUFFIX):
            os.remove(os.path.join(root, name))
    result = {}
    for run, count, use_cache in (('cold', ranks, True), ('warm', ranks, True),
                                  ('baseline', baseline_ranks, False)):
        if count:
            print(f'[ranks] {run}: {count} ranks', file=sys.stderr, flush=True)
            result[run] = start_ranks(root, ann_file, count, use_cache)
            print(json.dumps(result[run]), file=sys.stderr, flush=True)
    cache = [name for name in os.listdir(root) if name.endswith(SUFFIX)]
    cache_mb = sum(os.path.getsize(os.path.join(root, name)) for name in cache) / 2**20
    return dict(ranks=ranks, dataset_init_s=result['warm']['dataset_init_s'],
                private_mb_per_rank=result['warm']['private_mb_per_rank'],
                cache_file_mb=round(cache_mb), **result)


def main():
    args = parse_args()
    if args.rank_worker:
        return rank_worker(args.work_dir, args.ann_file, not args.no_cache)
    root = os.path.join(args.work_dir, f'meta-{args.logs}x{args.frames}')
    marker = os.path.join(root, '.complete')
    if not os.path.exists(marker):
        start = time.time()
        build_metadata(root, args.logs, args.frames, template_frame(args.work_dir))
        open(marker, 'w').close()
        print(f'[build] metadata written in {time.time() - start:.0f} s', file=sys.stderr)
    result = dict(logs=args.logs, frames_per_log=args.frames, cpu_count=os.cpu_count())
    if not (args.ranks and os.path.exists(os.path.join(root, 'openscene_trainval_train.pkl'))):
        collect_s, collect_peak_mb, _ = run_collect(root)
        result.update(collect_s=round(collect_s, 1), collect_peak_rss_mb=round(collect_peak_mb))
    if args.ranks:
        result.update(measure_ranks(root, args.ranks, args.baseline_ranks))
        print(json.dumps(result))
        return
    for variant in VARIANTS:
        ctx = torch.multiprocessing.get_context('fork')
        queue = ctx.Queue()
        proc = ctx.Process(target=lambda q, v=variant: q.put(
            measure_workers(root, v, args.workers, args.samples)), args=(queue,))
        proc.start()
        measured = queue.get()
        proc.join()
        result[variant] = measured
        print(json.dumps(measured), file=sys.stderr, flush=True)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
