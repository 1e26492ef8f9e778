"""Installs the `occnet` package from projects/occnet (see README.md)."""
from pathlib import Path

from setuptools import find_packages, setup


def read_requirements(name):
    lines = Path('requirements', name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith('#')]


setup(
    name='occnet',
    version='0.1.0',
    description='Camera-only 3D semantic occupancy (OccNet / BEVFormer) on OpenScene, '
    'on current PyTorch.',
    python_requires='>=3.9',
    package_dir={'': 'projects'},
    packages=find_packages('projects', include=['occnet', 'occnet.*']),
    install_requires=read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt')},
)
