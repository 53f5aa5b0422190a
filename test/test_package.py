"""Packaging: the CLI parses and package.xml is well formed (imports: test_layers.py)."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
