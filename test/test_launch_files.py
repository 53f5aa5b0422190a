"""Launch files: checked statically everywhere, built with launch_ros where it is installed."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
EXTERNAL_EXECUTABLES = {'rviz2'}


def package_executables() -> set[str]:
    setup = (ROOT / 'setup.py').read_text()
    return set(re.findall(r"'([\w-]+) = lma_perception[\w.]*:main'", setup))


def literal_keywords(tree: ast.AST, name: str) -> list[str]:
    return [keyword.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            for keyword in node.keywords
            if keyword.arg == name and isinstance(keyword.value, ast.Constant)]


def config_files_named(tree: ast.AST) -> list[str]:
    """Files named as PathJoinSubstitution([share, 'config', NAME])."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.List) and len(node.elts) == 3:
            parts = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            if parts[1] == 'config' and parts[2]:
                names.append(parts[2])
    return names


def test_the_three_launch_files_exist():
    assert {path.name for path in LAUNCH_FILES} == {
        'segment.launch.py', 'rig.launch.py', 'replay.launch.py'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_references_real_executables_and_files(path):
    tree = ast.parse(path.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions

    executables = set(literal_keywords(tree, 'executable'))
    assert executables, 'the launch file starts no node'
    assert executables <= package_executables() | EXTERNAL_EXECUTABLES
    assert set(literal_keywords(tree, 'package')) <= {'lma_perception', 'rviz2'}
    for name in config_files_named(tree):
        assert (ROOT / 'config' / name).is_file(), f'config/{name} is missing'


def test_setup_installs_launch_and_config_files():
    setup = (ROOT / 'setup.py').read_text()
    assert "glob('launch/*.py')" in setup and "glob('config/*')" in setup


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_description_builds(path):
    pytest.importorskip('launch_ros', reason='launch_ros is not installed (pip-only ROS)')
    spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert description.entities
