"""package.xml declares what the code imports, so that rosdep installs it, and nothing else."""

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_CODE = ('lma_perception', 'launch')
TEST_CODE = ('test',)

# Every third-party module the code imports, and its rosdep key.
ROSDEP_KEYS = {
    'ament_index_python': 'ament_index_python',
    'builtin_interfaces': 'builtin_interfaces',
    'cv2': 'python3-opencv',
    'diagnostic_msgs': 'diagnostic_msgs',
    'launch': 'launch',
    'launch_ros': 'launch_ros',
    'launch_testing': 'launch_testing',
    'lifecycle_msgs': 'lifecycle_msgs',
    'matplotlib': 'python3-matplotlib',
    'numpy': 'python3-numpy',
    'psutil': 'python3-psutil',
    'pytest': 'python3-pytest',
    'rcl_interfaces': 'rcl_interfaces',
    'rclpy': 'rclpy',
    'rosgraph_msgs': 'rosgraph_msgs',
    'sensor_msgs': 'sensor_msgs',
    'std_msgs': 'std_msgs',
    'std_srvs': 'std_srvs',
    'torch': 'python3-torch',
    'tqdm': 'python3-tqdm',
    'vision_msgs': 'vision_msgs',
    'yaml': 'python3-yaml',
}
# Modules rosdep has no key for: they install with pip (README, requirements.txt).
PIP_ONLY = {
    'rosbags',            # bag reading and writing
    'safetensors',        # checkpoints
    'triton',             # the fused CUDA memory read; optional, imported only on CUDA
    'cityscapesscripts',  # a test cross-checks the labels against the official scripts
    'onnx',               # the exported graphs' format (deployment runtimes)
    'onnxruntime',        # a CPU backend
    'openvino',           # a CPU backend
}
# Command-line tools the tests run as processes (`ros2 launch`, `ros2 param`).
TEST_TOOLS = {'ros2launch', 'ros2param'}
# The test folder's own helper modules (test_segment_node: its probe and node fixtures serve the
# fault and transport tests too).
TEST_HELPERS = {'codec_samples', 'conftest', 'launch_probe', 'model_tester', 'ros_tools',
                'test_segment_node'}


def imported_modules(folders: tuple[str, ...]) -> set[str]:
    """Top-level modules imported (or asked for with pytest.importorskip) under `folders`."""
    modules = set()
    for folder in folders:
        for path in (ROOT / folder).rglob('*.py'):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules.add(node.module)
                elif (isinstance(node, ast.Call) and getattr(node.func, 'attr', '') ==
                      'importorskip' and isinstance(node.args[0], ast.Constant)):
                    modules.add(node.args[0].value)
    top_level = {module.split('.')[0] for module in modules}
    return top_level - set(sys.stdlib_module_names) - {'lma_perception'} - TEST_HELPERS


def declared(*tags: str) -> set[str]:
    root = ET.parse(ROOT / 'package.xml').getroot()
    return {element.text.strip() for tag in tags for element in root.iter(tag)}


def keys_of(modules: set[str]) -> set[str]:
    unknown = modules - set(ROSDEP_KEYS) - PIP_ONLY
    assert not unknown, f'new imports {sorted(unknown)}: add their rosdep keys here and to ' \
                        'package.xml (or list them as pip-only)'
    return {ROSDEP_KEYS[module] for module in modules - PIP_ONLY}


def test_every_run_import_is_a_run_dependency():
    missing = keys_of(imported_modules(RUN_CODE)) - declared('exec_depend', 'depend')
    assert not missing, f'package.xml lacks <exec_depend> for {sorted(missing)}'


def test_every_test_import_is_a_test_or_run_dependency():
    missing = keys_of(imported_modules(TEST_CODE)) - declared(
        'test_depend', 'exec_depend', 'depend')
    assert not missing, f'package.xml lacks <test_depend> for {sorted(missing)}'


def test_every_dependency_is_imported():
    run_keys = keys_of(imported_modules(RUN_CODE))
    test_keys = keys_of(imported_modules(TEST_CODE))
    assert declared('exec_depend', 'depend') == run_keys
    assert declared('test_depend') == (test_keys - run_keys) | TEST_TOOLS
