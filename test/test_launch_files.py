"""Launch files: checked statically everywhere, built with launch_ros where it is installed."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from lma_perception.data.rosbag import image_topic
from lma_perception.rig import input_topics, load_rig
from lma_perception.synthetic.generator import CAMERAS

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


def argument_defaults(path: Path) -> dict[str, str]:
    """The literal default of every DeclareLaunchArgument in a launch file."""
    defaults = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument'
                and isinstance(node.args[0], ast.Constant)):
            for keyword in node.keywords:
                if keyword.arg == 'default_value' and isinstance(keyword.value, ast.Constant):
                    defaults[node.args[0].value] = keyword.value.value
    return defaults


def config_input_topics(name: str) -> dict[str, str]:
    """Camera → absolute input topic of a node parameter file in config/."""
    rig = load_rig(ROOT / 'config' / name)
    return dict(zip(rig['cameras'], input_topics(rig), strict=True))


def rviz_topics() -> set[str]:
    config = yaml.safe_load((ROOT / 'config' / 'lma.rviz').read_text())
    return {display['Topic']['Value'] for display in config['Visualization Manager']['Displays']
            if display['Class'] == 'rviz_default_plugins/Image'}


def test_segment_launch_defaults_are_those_of_its_config():
    defaults = argument_defaults(ROOT / 'launch' / 'segment.launch.py')
    assert config_input_topics('segment.yaml') == {defaults['camera']: defaults['image_topic']}


def test_rig_and_replay_default_to_the_cameras_and_topics_of_written_bags():
    for launch_file in ('rig.launch.py', 'replay.launch.py'):
        tree = ast.parse((ROOT / 'launch' / launch_file).read_text())
        assert config_files_named(tree) == ['rig_front3.yaml'], launch_file
    assert config_input_topics('rig_front3.yaml') == {
        camera: image_topic(camera) for camera in CAMERAS}


def test_rviz_shows_every_camera_of_the_configs():
    expected = set()
    for name in ('segment.yaml', 'rig_front3.yaml'):
        for camera, topic in config_input_topics(name).items():
            expected |= {topic, f'/{camera}/overlay', f'/{camera}/color_mask'}
    assert rviz_topics() == expected


def test_pytest_is_pinned_below_9_for_launch_testing():
    # launch_testing up to 3.8 (Jazzy, Kilted) registers a hook that pytest 9 rejects, which
    # aborts every pytest run on a machine where launch_testing is installed.
    pin = re.search(r'^pytest==(\d+)\.', (ROOT / 'requirements.txt').read_text(), re.M)
    assert pin and int(pin.group(1)) < 9


def test_pytest_loads_the_launch_testing_plugin(pytestconfig):
    pytest.importorskip('launch_testing', reason='launch_testing is not installed')
    assert pytestconfig.pluginmanager.hasplugin('launch_testing')
