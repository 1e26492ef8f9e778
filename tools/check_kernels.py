"""Compile every Triton kernel of occnet to cubin for real GPU targets, with no GPU needed.

    python tools/check_kernels.py [--arch 80 90] [--dtype fp32 bf16 fp16] [--jobs N]
        [--kernel NAME ...]

Every module under occnet/ops/ is imported and each `@triton.jit` function in it whose name
ends in `_kernel` is an entry kernel: the module's AOT_SPECS must give it one or more
variants (representative constexprs, such as the baseline's spatial cross-attention and
temporal self-attention shapes), each a function dtype -> (signature, constexprs, attrs,
options), with attrs the divisibility the launcher would mark (aligned pointers).
Other jit functions are helpers, compiled inside the kernels that call them. Each kernel,
variant, architecture and dtype is compiled with `triton.compile` for GPUTarget('cuda', arch,
32) (Triton ships ptxas) and gets one line: cubin size, registers and local memory per thread
(where spills go; 0 means no spills) read from the cubin with cuobjdump, and the atomic
instructions of its PTX with their memory ordering. The exit status is non-zero when any
compile fails or an entry kernel has no spec.
"""
import argparse
import collections
import concurrent.futures
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import time

DTYPES = ('fp32', 'bf16', 'fp16')


def entry_kernels(package=None):
    """{(module name, kernel name): variants dict} for every entry kernel in the modules of
    `package` (default occnet.ops), and a list of problems (entry kernels without a spec,
    specs without a kernel)."""
    from triton.runtime.jit import JITFunction
    if package is None:
        import occnet.ops as package
    found, problems = {}, []
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + '.'):
        module = importlib.import_module(info.name)
        specs = getattr(module, 'AOT_SPECS', {})
        kernels = [name for name, obj in vars(module).items()
                   if isinstance(obj, JITFunction) and obj.fn.__module__ == info.name
                   and name.endswith('_kernel')]
        for name in kernels:
            if name in specs:
                found[(info.name, name)] = specs[name]
            else:
                problems.append(f'{info.name}.{name}: no AOT_SPECS entry; add its signature '
                                f'and representative constexprs to {info.name}.AOT_SPECS')
        problems += [f'{info.name}.AOT_SPECS names {name}, which is not a jit kernel there'
                     for name in specs if name not in kernels]
    return found, problems


def _cuobjdump():
    import triton
    path = os.path.join(os.path.dirname(triton.__file__), 'backends', 'nvidia', 'bin',
                        'cuobjdump')
    return path if os.path.exists(path) else None


def resources(cubin):
    """(registers, local bytes) per thread of a cubin, from cuobjdump; (None, None) when it
    is not available."""
    tool = _cuobjdump()
    if tool is None:
        return None, None
    with tempfile.NamedTemporaryFile(suffix='.cubin') as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([tool, '-res-usage', f.name], capture_output=True,
                              text=True).stdout
    regs = re.search(r'REG:(\d+)', text)
    local = re.search(r'LOCAL:(\d+)', text)
    return (int(regs.group(1)) if regs else None, int(local.group(1)) if local else None)


def atomics(ptx):
    """{'atom.global.gpu.relaxed.add.f32': count, ...}: the PTX's atomic and reduction
    instructions."""
    return dict(collections.Counter(re.findall(r'\b(?:atom|red)\.[\w.]+', ptx)))


def compile_one(module_name, kernel_name, variant, arch, dtype):
    """Compile one kernel variant; returns a result dict (error text on failure)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    start = time.perf_counter()
    result = dict(kernel=kernel_name, variant=variant, arch=arch, dtype=dtype)
    try:
        module = importlib.import_module(module_name)
        signature, constexprs, attrs, options = module.AOT_SPECS[kernel_name][variant](dtype)
        source = ASTSource(getattr(module, kernel_name), signature, constexprs, attrs)
        compiled = triton.compile(source, target=GPUTarget('cuda', arch, 32), options=options)
        cubin = compiled.asm['cubin']
        registers, local = resources(cubin)
        result.update(ok=True, cubin_bytes=len(cubin), registers=registers, local_bytes=local,
                      atomics=atomics(compiled.asm['ptx']))
    except Exception as err:  # report every failure, keep compiling the others
        result.update(ok=False, error=f'{type(err).__name__}: {err}'.strip()[-2000:])
    result['seconds'] = time.perf_counter() - start
    return result


def describe(r):
    """One line for a result."""
    head = f"{r['kernel']:<24} {r['variant']:<11} sm_{r['arch']:<3} {r['dtype']:<5}"
    if not r['ok']:
        return f"{head} FAILED  {r['error'].splitlines()[-1][:200]}"
    regs = '?' if r['registers'] is None else r['registers']
    local = '?' if r['local_bytes'] is None else r['local_bytes']
    atoms = ', '.join(f'{n} x{c}' for n, c in sorted(r['atomics'].items())) or 'none'
    return (f"{head} ok  cubin {r['cubin_bytes'] / 1024:6.1f} KiB  regs {regs:>3}  "
            f"local {local:>4} B  {r['seconds']:4.1f} s  atomics: {atoms}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', type=int, nargs='+', default=[80, 90],
                        help='compute capabilities, e.g. 80 (A100) 90 (H100/H200)')
    parser.add_argument('--dtype', nargs='+', choices=DTYPES, default=list(DTYPES))
    parser.add_argument('--kernel', nargs='+', help='only these kernel names')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    try:
        import triton  # noqa: F401
    except ImportError:
        sys.exit('error: triton is not installed (it ships with the CUDA wheels of torch)')
    kernels, problems = entry_kernels()
    jobs = [(module, kernel, variant, arch, dtype)
            for (module, kernel), variants in sorted(kernels.items())
            if not args.kernel or kernel in args.kernel
            for variant in variants for arch in args.arch for dtype in args.dtype]
    print(f'[check_kernels] {len(jobs)} compiles: {len(kernels)} kernels x variants x '
          f'{len(args.arch)} archs x {len(args.dtype)} dtypes, {args.jobs} jobs',
          file=sys.stderr, flush=True)
    start, failures = time.perf_counter(), 0
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        for done, result in enumerate(pool.map(compile_one, *zip(*jobs)), 1):
            failures += not result['ok']
            elapsed = time.perf_counter() - start
            eta = elapsed / done * (len(jobs) - done)
            print(describe(result) + f'  [{done}/{len(jobs)}, ETA {eta:.0f} s]', flush=True)
    for problem in problems:
        print(f'MISSING  {problem}')
    print(f'[check_kernels] {len(jobs) - failures}/{len(jobs)} compiled in '
          f'{time.perf_counter() - start:.0f} s; {len(problems)} kernels without a spec',
          file=sys.stderr)
    sys.exit(1 if failures or problems or not jobs else 0)


if __name__ == '__main__':
    main()
