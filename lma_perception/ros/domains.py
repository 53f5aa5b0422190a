"""ROS domain ids reserved across processes, so that runs on one machine never meet.

Each id is reserved with an exclusive lock on a file, held until it is released (or the
process ends). Tests and benchmarks take their domains here.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / 'lma_perception_ros_domains'
# Domains 1..232 are valid for Fast DDS (its port formula ends there).
FIRST_DOMAIN, LAST_DOMAIN = 1, 232
_next = FIRST_DOMAIN + os.getpid() % (LAST_DOMAIN - FIRST_DOMAIN)


def reserve_domain() -> tuple[int, int]:
    """Return a domain id that nobody else uses now, and the lock to `os.close` to free it.

    Raises:
        RuntimeError: every domain is taken.
    """
    global _next
    LOCK_DIR.mkdir(exist_ok=True)
    span = LAST_DOMAIN - FIRST_DOMAIN + 1
    for _ in range(span):
        domain = _next
        _next = FIRST_DOMAIN + (_next - FIRST_DOMAIN + 1) % span
        descriptor = os.open(LOCK_DIR / f'{domain}.lock', os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        return domain, descriptor
    raise RuntimeError(f'every ROS domain {FIRST_DOMAIN}..{LAST_DOMAIN} is in use')
