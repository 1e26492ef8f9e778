"""Peak memory of a stretch of work, for benchmarks: CUDA's allocator peak on GPUs, the
resident-set high-water mark on Linux CPUs."""
import torch


def reset_peak(device='cpu'):
    """Start tracking here; returns the memory in use now (MB), to subtract later.

    On CPU this writes 5 to /proc/self/clear_refs, which resets the process's VmHWM."""
    if str(device).startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2 ** 20
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    return status_mb('VmRSS')


def peak_growth_mb(device, baseline):
    """Peak memory since reset_peak minus `baseline` (MB)."""
    if str(device).startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2 ** 20 - baseline
    return status_mb('VmHWM') - baseline


def status_mb(field, pid=None):
    """A /proc/<pid>/status memory field (e.g. 'VmRSS', 'VmHWM') in MB; default this
    process."""
    with open(f'/proc/{pid or "self"}/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ':')) / 1024
