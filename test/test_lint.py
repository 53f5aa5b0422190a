"""The linter runs as a test so that `make test` and CI enforce it."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean():
    ruff = shutil.which('ruff') or str(Path(sys.executable).parent / 'ruff')
    result = subprocess.run([ruff, 'check', str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
