"""Import a repository script (benchmarks/*.py, tools/*.py) by its path, as a module."""
import importlib.util
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relative_path):
    """The module of REPO_ROOT/relative_path, executed fresh (named after its file)."""
    path = os.path.join(REPO_ROOT, relative_path)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
