"""The Fast DDS transport profile shipped in `config/fastdds_loopback.xml`, and how to select it.

Fast DDS reads the XML file named by an environment variable when a process creates its first
participant, so the variable must be set before `rclpy.init`; child processes inherit it. A
variable the user has already set wins: their own profile is kept.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

PROFILE_NAME = 'fastdds_loopback.xml'
# Fast DDS 3 (Kilted and later) reads the first, Fast DDS 2 (Humble, Jazzy) the second; Kilted
# still reads the second but warns that it is deprecated.
PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
FAST_DDS_2_DISTROS = ('humble', 'jazzy')

_PACKAGE = Path(__file__).resolve().parent.parent
_CANDIDATES = (
    _PACKAGE.parent / 'config' / PROFILE_NAME,  # a source checkout
    # pip and colcon installs alike: <prefix>/lib/pythonX.Y/site-packages/lma_perception and
    # <prefix>/share/lma_perception/config.
    *[prefix / 'share' / 'lma_perception' / 'config' / PROFILE_NAME
      for prefix in _PACKAGE.parents[3:4]],
)


def profile_path() -> Path:
    """Return the shipped profile file.

    Raises:
        FileNotFoundError: the package is installed without its `config/` folder.
    """
    for candidate in _CANDIDATES:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f'{PROFILE_NAME} is in none of {", ".join(str(c) for c in _CANDIDATES)}'
    )


def use_loopback_profile(environ: MutableMapping[str, str] = os.environ) -> str:
    """Select the shipped profile in `environ` unless a profile is already selected there.

    Returns the profile file in effect.
    """
    for variable in PROFILE_VARIABLES:
        if environ.get(variable):
            return environ[variable]
    path = str(profile_path())
    environ[profile_variable(environ)] = path
    return path


def profile_variable(environ: MutableMapping[str, str] = os.environ) -> str:
    """Return the variable this ROS distribution's Fast DDS reads (from ROS_DISTRO)."""
    return PROFILE_VARIABLES[1 if environ.get('ROS_DISTRO') in FAST_DDS_2_DISTROS else 0]


def use_default_transport(environ: MutableMapping[str, str] = os.environ) -> None:
    """Select Fast DDS's built-in transports (for comparisons): no profile file at all."""
    for variable in PROFILE_VARIABLES:
        environ.pop(variable, None)
