"""Packaging: the core imports without ROS, the CLI parses, package.xml is well formed."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CORE_MODULES = ['lma_perception', 'lma_perception.cli']


def test_core_imports_without_rclpy():
    # A meta-path finder that refuses rclpy proves the core never needs it.
    code = (
        'import sys\n'
        'class Block:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name.split(".")[0] in ("rclpy", "sensor_msgs", "std_msgs"):\n'
        '            raise ImportError("ROS hidden for this test")\n'
        'sys.meta_path.insert(0, Block())\n'
        f'for m in {CORE_MODULES!r}:\n'
        '    __import__(m)\n'
        'from lma_perception.cli import build_parser\n'
        'build_parser()\n'
    )
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cli_help_lists_commands():
    result = subprocess.run(
        [sys.executable, '-m', 'lma_perception.cli', '--help'],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert 'doctor' in result.stdout


def test_package_xml_format3_with_ros_dependencies():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'lma_perception'
    depends = {e.text for e in root.iter('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'std_srvs', 'diagnostic_msgs',
            'launch_ros'} <= depends
    assert root.find('export/build_type').text == 'ament_python'
