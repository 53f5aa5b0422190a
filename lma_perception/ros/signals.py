"""SIGINT and SIGTERM as a request to stop, so that a process shuts down in order.

rclpy's own handlers shut the ROS context down the moment a signal arrives, while a worker may
still be publishing ("publisher's context is invalid"), and SIGINT then also raises
KeyboardInterrupt wherever the main thread happens to be. Inside `StopOnSignal` both signals
only set an event: the caller stops its loops, joins its threads, destroys its nodes and only
then shuts the context down. Pass `signal_handler_options=SignalHandlerOptions.NO` to
`rclpy.init` so that rclpy does not install its handlers over these.

Imports nothing heavy, so a command can install it before importing PyTorch or rclpy and a
signal during start-up is handled too.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """While active (a `with` block in the main thread), SIGINT and SIGTERM set `stop`."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.received: signal.Signals | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignal:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signal.Signals(signum)
        self.stop.set()
