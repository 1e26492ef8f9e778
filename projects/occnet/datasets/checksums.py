"""Checking downloaded archives against an md5sum-format checksum file (verify_dataset --md5)."""
import hashlib
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from occnet.datasets.infos import DataError

MD5_CHUNK_BYTES = 8 << 20
MD5_LINE = re.compile(r'^([0-9a-fA-F]{32}) [ *](.+)$')


def read_md5_file(path):
    """[(md5 lower-case hex, name)] of a checksum file in `md5sum` format.

    Raises DataError naming the file and line when it is missing or a line does not parse."""
    if not os.path.isfile(path):
        raise DataError(f'checksum file not found: {path}')
    entries = []
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip('\r\n')
            if not line.strip() or line.startswith('#'):
                continue
            match = MD5_LINE.match(line)
            if not match:
                raise DataError(f'{path} line {number} is not in md5sum format '
                                f'("<32 hex digits>  <file name>"): {line[:80]!r}')
            entries.append((match.group(1).lower(), match.group(2)))
    return entries


def file_md5(path, on_bytes=None, chunk_size=MD5_CHUNK_BYTES):
    """Hex md5 of a file read in chunks; on_bytes(n) after each chunk."""
    digest = hashlib.md5()
    with open(path, 'rb') as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return digest.hexdigest()


def verify_archives(md5_path, report, archive_dir=None, workers=4, progress=None):
    """Check the archives a checksum file lists: archive_missing / archive_mismatch.

    Args:
        archive_dir: folder the names are relative to (default: the checksum file's folder).
        progress: callable(bytes done, bytes total), called under a lock from worker threads.
    """
    entries = read_md5_file(md5_path)
    base = os.path.dirname(md5_path) if archive_dir is None else archive_dir
    report.info.update(md5=md5_path, archive_dir=base)
    present = []
    for expected, name in entries:
        path = os.path.join(base, name)
        if os.path.isfile(path):
            present.append((expected, path))
        else:
            report.add('archive_missing', path, None, f'listed in {md5_path} but not found')
    total = sum(os.path.getsize(path) for _, path in present)
    lock, done = threading.Lock(), [0]

    def on_bytes(num_bytes):
        with lock:
            done[0] += num_bytes
            if progress is not None:
                progress(done[0], total)

    def md5_or_error(path):
        try:
            return file_md5(path, on_bytes)
        except OSError as err:
            return err

    with ThreadPoolExecutor(max(1, workers)) as pool:
        actuals = list(pool.map(md5_or_error, [path for _, path in present]))
    for (expected, path), actual in zip(present, actuals):
        report.checked['archives'] += 1
        if isinstance(actual, OSError):
            report.add('archive_mismatch', path, None, f'cannot read: {actual}')
        elif actual != expected:
            report.add('archive_mismatch', path, None,
                       f'md5 {actual}, expected {expected} (size {os.path.getsize(path)} B)')
    report.checked['archive_bytes'] += total
    return report
