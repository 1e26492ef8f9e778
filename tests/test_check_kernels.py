"""tools/check_kernels.py: the Triton kernels compile to cubin for sm_90 with no GPU, the
backward's atomics are relaxed (and the CSR variant has none), and a kernel without a
compile spec is reported."""
import importlib
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip('triton')
sys.path.insert(0, os.path.join(ROOT, 'tools'))
check_kernels = importlib.import_module('check_kernels')


def test_every_kernel_compiles_for_sm90_in_fp32(tmp_path):
    env = dict(os.environ, TRITON_CACHE_DIR=str(tmp_path / 'cache'))  # really compile
    result = subprocess.run([sys.executable, 'tools/check_kernels.py', '--arch', '90',
                             '--dtype', 'fp32'], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = {tuple(line.split()[:2]): line for line in result.stdout.splitlines()
             if 'sm_90' in line}
    variants = {('_msda_forward_kernel', 'sca'), ('_msda_forward_kernel', 'tsa')} | {
        ('_msda_backward_kernel', f'{shape}-{grad}') for shape in ('sca', 'tsa')
        for grad in ('atomic', 'csr')}
    assert set(lines) == variants
    for (kernel, variant), line in lines.items():
        assert ' ok ' in line and 'cubin' in line and 'regs' in line, line
        if variant.endswith('atomic'):
            # relaxed, and 4 channels per atomic: the launcher's alignment is compiled in
            assert 'atom.global.gpu.relaxed.add.v4.f32' in line and 'acq_rel' not in line, line
        else:
            assert 'atomics: none' in line, line


def test_a_kernel_without_a_spec_is_reported(tmp_path, monkeypatch):
    package = tmp_path / 'fake_ops'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'orphan.py').write_text(
        'import triton\nimport triton.language as tl\n\n\n'
        '@triton.jit\ndef _helper(x):\n    return x + 1\n\n\n'
        '@triton.jit\ndef _orphan_kernel(ptr, N: tl.constexpr):\n'
        '    tl.store(ptr + tl.arange(0, N), _helper(tl.arange(0, N)))\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    found, problems = check_kernels.entry_kernels(importlib.import_module('fake_ops'))
    assert found == {}
    assert len(problems) == 1 and 'fake_ops.orphan._orphan_kernel: no AOT_SPECS' in problems[0]
