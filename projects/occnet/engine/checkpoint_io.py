"""Crash-safe checkpoints: atomic writes, save-then-prune, and finding the newest complete one.

A checkpoint (and the `last_checkpoint` pointer) is written to a temporary file in the same
folder, flushed to disk and renamed over the target, so a process killed while saving leaves
the previous files intact. mmengine's CheckpointHook deletes the oldest checkpoint *before*
saving the new one (with max_keep_ckpts=1 a kill during the save would leave none);
SafeCheckpointHook saves first and prunes after.

Every local checkpoint the Runner loads goes through `load_safely` (torch.load with
weights_only=True, memory-mapped), and a file `check_checkpoint` has just loaded is handed to
the Runner from memory instead of being read again.
"""
import glob
import os
import pickle
import re
import zipfile

import torch

from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.runner import CheckpointLoader

from occnet.atomic_file import write_atomically
from occnet.registry import HOOKS

@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic `put` and `put_text`."""

    def put(self, obj, filepath):
        write_atomically(os.fspath(filepath), obj)

    def put_text(self, obj, filepath, encoding='utf-8'):
        write_atomically(os.fspath(filepath), obj.encode(encoding))


def is_complete_checkpoint(path):
    """True when `path` is a whole torch zip checkpoint (its central directory, which is
    written last, is readable and names a data.pkl)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith('/data.pkl') for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects that are not tensors or builtins."""


_checked = {}  # absolute path -> (mtime, checkpoint) loaded by check_checkpoint, not yet used


def check_checkpoint(path):
    """Refuse, with a message naming the file, a checkpoint that is missing, not a torch
    file, or that `torch.load(weights_only=True)` will not load (it holds arbitrary objects,
    whose unpickling could run code). Nothing in the file is executed. Returns the loaded
    checkpoint, which the Runner's next load of the same unchanged file takes from memory
    (load_safely), so the file is read once."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0]
        raise UnsafeCheckpointError(
            f'refusing checkpoint {path}: it holds objects other than tensors and builtins '
            f'({first[:200]}). occnet checkpoints never do; if you trust the file, load it '
            'yourself with torch.load(weights_only=False) and save its state_dict') from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise UnsafeCheckpointError(f'checkpoint {path} is not a readable torch file '
                                    f'(truncated or corrupt?): {err}') from None
    _checked[os.path.abspath(path)] = (os.path.getmtime(path), checkpoint)
    return checkpoint


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_safely(filename, map_location=None):
    """mmengine's loader of local checkpoint files, replaced: the checkpoint check_checkpoint
    loaded (when the file has not changed since), else torch.load with weights_only=True and
    mmap (tensors stay on the CPU until the model and optimizer copy them to their device)."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    mtime, checkpoint = _checked.pop(os.path.abspath(filename), (None, None))
    if checkpoint is not None and mtime == os.path.getmtime(filename):
        return checkpoint
    return torch.load(filename, map_location='cpu', weights_only=True, mmap=True)


def _step_of(path):
    match = re.search(r'(?:epoch|iter)_(\d+)\.pth$', os.path.basename(path))
    return int(match.group(1)) if match else -1


def find_resumable_checkpoint(work_dir):
    """The newest complete checkpoint of a work dir, or None.

    Candidates are `last_checkpoint`'s target and every epoch_N.pth / iter_N.pth; the newest
    by modification time (then step) that `is_complete_checkpoint` accepts wins, so a
    truncated file or a stale pointer is skipped with a message naming it."""
    candidates = set(glob.glob(os.path.join(work_dir, 'epoch_*.pth')) +
                     glob.glob(os.path.join(work_dir, 'iter_*.pth')))
    pointer = os.path.join(work_dir, 'last_checkpoint')
    if os.path.isfile(pointer):
        with open(pointer) as f:
            target = f.read().strip()
        if target:
            candidates.add(target if os.path.isabs(target) else os.path.abspath(target))
    ordered = sorted((p for p in candidates if os.path.exists(p)),
                     key=lambda p: (os.path.getmtime(p), _step_of(p)), reverse=True)
    for path in ordered:
        if is_complete_checkpoint(path):
            return path
        print_log(f'skipping incomplete checkpoint {path} (truncated or not a torch '
                  'checkpoint); trying an older one', logger='current')
    return None


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """CheckpointHook that writes atomically (AtomicLocalBackend for the checkpoint and the
    `last_checkpoint` pointer) and removes outdated checkpoints only after the new one is on
    disk. Takes CheckpointHook's arguments.

    mmengine does the save in one method, `_save_checkpoint_with_step`: prune, save, write
    the pointer with a plain open(). This one keeps its save call as it is and replaces the
    two other steps: the pointer is written atomically (`_write_pointer`), and the pruning
    (`_prune`) comes after the save."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('backend_args', dict(backend='atomic_local'))
        super().__init__(*args, **kwargs)

    def _save_checkpoint_with_step(self, runner, step, meta):
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(  # CheckpointHook's call
            self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        self._write_pointer(runner)
        if self.max_keep_ckpts > 0:
            self._prune(runner, step, self.max_keep_ckpts)

    def _write_pointer(self, runner):
        """`last_checkpoint` in the work dir names the newest checkpoint (rank 0 only)."""
        if runner.rank == 0:
            write_atomically(os.path.join(runner.work_dir, 'last_checkpoint'),
                             self.last_ckpt.encode())

    def _prune(self, runner, step, keep):
        if not self.keep_ckpt_ids or self.keep_ckpt_ids[-1] != step:
            self.keep_ckpt_ids.append(step)
        while len(self.keep_ckpt_ids) > keep:
            old = self.keep_ckpt_ids.popleft()
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if runner.rank == 0 and self.file_backend.isfile(path):
                self.file_backend.remove(path)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
