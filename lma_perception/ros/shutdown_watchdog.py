"""A bound on how long a process may take to shut down once it has been asked to stop.

Destroying the last node of a ROS context deletes its Fast DDS participant inside one C call
(`Node.destroy_node` -> `destroy_when_not_in_use`) that holds the GIL throughout. Under load that
call has been seen to spin and never return, and a process that never exits stalls whoever
waits for it: a launch file, `lma-perception rig`, a CI job. Once `start()` is called the rest of
the shutdown has `timeout_s`; then the process ends, with exit status 1, in one of two ways:

- a Python timer logs one FATAL line naming the step in progress and exits; it runs when the
  stuck step releases the GIL (a join, a wait on a lock);
- `faulthandler`'s watchdog, a C thread that needs no GIL, fires `BACKSTOP_S` later for a step
  stuck in C with the GIL held: it prints "Timeout" and the stack of every thread (the step it
  hangs in) and exits.

Imports nothing heavy; `lma_perception.commands.rig` bounds its node processes from outside too.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
from collections.abc import Callable
from types import TracebackType

STUCK_EXIT_STATUS = 1
BACKSTOP_S = 5.0  # how much later faulthandler ends a process the Python timer could not


class ShutdownWatchdog:
    """Ends the process when the shutdown begun by `start()` outlasts `timeout_s`.

    A `with` block: leaving it disarms the watchdog, so it covers every step up to there.
    """

    def __init__(self, timeout_s: float, report: Callable[[str], None]) -> None:
        self.timeout_s = timeout_s
        self._report = report
        self._step = 'stopping'
        self._timer: threading.Timer | None = None

    def start(self, step: str) -> None:
        """Start the countdown (once; later calls only name the step)."""
        self._step = step
        if self._timer is not None:
            return
        self._timer = threading.Timer(self.timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()
        faulthandler.dump_traceback_later(self.timeout_s + BACKSTOP_S, exit=True, file=sys.stderr)

    def step(self, step: str) -> None:
        """Name the shutdown step now running, for the message should it never finish."""
        self._step = step

    def __enter__(self) -> ShutdownWatchdog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
            faulthandler.cancel_dump_traceback_later()
            self._timer = None

    def _expire(self) -> None:
        self._report(
            f'shutdown did not finish within {self.timeout_s:g} s (stuck {self._step}); '
            f'exiting with status {STUCK_EXIT_STATUS} without finishing it'
        )
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(STUCK_EXIT_STATUS)
