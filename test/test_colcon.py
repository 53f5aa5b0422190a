"""`colcon build` and `colcon test` of the package, in a workspace of its own.

`colcon test` must run the real suite with pytest: a package that does not declare pytest the
way colcon reads it gets unittest instead, which finds nothing here and reports success.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ros_tools import COLCON, needs_colcon

ROOT = Path(__file__).resolve().parent.parent
# Set for the suite that `colcon test` runs from here, which must not start colcon once more.
NESTED = 'LMA_PERCEPTION_UNDER_COLCON_TEST'
TOP_LEVEL_LEFT_OUT = {'.git', '.venv', 'build', 'install', 'log', 'data', 'runs', 'reports',
                      '.pytest_cache', '.ruff_cache'}
TIMEOUT_S = 3600

pytestmark = [
    needs_colcon,
    pytest.mark.skipif(NESTED in os.environ, reason='this suite runs under the colcon test'),
]


def left_out(directory: str, names: list[str]) -> set[str]:
    """What is not copied into the workspace: caches, build outputs, local data."""
    skipped = {name for name in names if name == '__pycache__' or name.endswith('.egg-info')}
    if Path(directory) == ROOT:
        skipped |= TOP_LEVEL_LEFT_OUT & set(names)
    return skipped


def colcon(workspace: Path, *arguments: str) -> subprocess.CompletedProcess:
    verb, *rest = arguments
    command = [COLCON, '--log-base', str(workspace / 'log'), verb]
    if verb in ('build', 'test'):
        command += ['--base-paths', str(workspace / 'src'),
                    '--build-base', str(workspace / 'build'),
                    '--install-base', str(workspace / 'install')]
    return subprocess.run([*command, *rest], cwd=workspace, env={**os.environ, NESTED: '1'},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def test_colcon_build_and_test_run_the_whole_suite(tmp_path):
    workspace = tmp_path / 'ws'
    shutil.copytree(ROOT, workspace / 'src' / 'lma_perception', ignore=left_out)

    built = colcon(workspace, 'build')
    assert built.returncode == 0, built.stdout + built.stderr
    install = workspace / 'install' / 'lma_perception'
    for installed in ('lib/lma_perception/segment_node', 'lib/lma_perception/bag_player',
                      'share/lma_perception/package.xml',
                      'share/lma_perception/launch/replay.launch.py',
                      'share/lma_perception/config/lma.rviz',
                      'share/ament_index/resource_index/packages/lma_perception'):
        assert (install / installed).exists(), f'colcon build did not install {installed}'

    tested = colcon(workspace, 'test', '--return-code-on-test-failure')
    assert tested.returncode == 0, (tested.stdout + tested.stderr)[-5000:]
    junit = workspace / 'build' / 'lma_perception' / 'pytest.xml'
    assert junit.exists(), 'colcon test did not run pytest'

    result = colcon(workspace, 'test-result', '--test-result-base',
                    str(workspace / 'build'), '--verbose')
    summary = re.search(r'Summary: (\d+) tests, (\d+) errors, (\d+) failures, (\d+) skipped',
                        result.stdout)
    assert summary, result.stdout + result.stderr
    tests, errors, failures, _ = map(int, summary.groups())
    assert tests > 0 and errors == 0 and failures == 0, result.stdout
    assert result.returncode == 0, result.stdout

    # The launch tests ran too: pytest loaded the launch_testing plugin.
    cases = {case.get('name') for case in ET.parse(junit).iter('testcase')}
    assert {'test_segment_launch', 'test_rig_launch', 'test_replay_launch'} <= cases, cases
