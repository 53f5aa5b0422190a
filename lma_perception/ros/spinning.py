"""Spin nodes in background threads, and stop them without callbacks left in flight.

rclpy's `Executor.shutdown()` destroys the executor's guard condition without waiting for the
callbacks still running (its wait is skipped once the shutdown flag is set), so a callback that
finishes afterwards fails with `InvalidHandle` and rclpy prints "exception was never
retrieved". Here every node gets a SingleThreadedExecutor in a thread of its own, which runs
`spin_once` until told to stop; the thread is joined before `shutdown()`, so nothing is in
flight by then. Nodes still run in parallel, one thread each.
"""

from __future__ import annotations

import threading

from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node

POLL_S = 0.05  # how long a stop request may wait for a spin_once to return


class BackgroundSpinner:
    """Spin nodes, one thread each, for the duration of a `with` block (or start()/stop())."""

    def __init__(self, context: Context, *nodes: Node) -> None:
        self._context = context
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._executors: list[SingleThreadedExecutor] = []
        for node in nodes:
            self.add(node)

    def add(self, node: Node) -> None:
        """Start spinning one more node."""
        executor = SingleThreadedExecutor(context=self._context)
        executor.add_node(node)
        thread = threading.Thread(target=self._spin, args=(executor,),
                                  name=f'spin_{node.get_name()}', daemon=True)
        self._executors.append(executor)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Stop every thread, then shut the executors down; the nodes stay alive."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for executor in self._executors:
            executor.shutdown()

    def __enter__(self) -> BackgroundSpinner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spin(self, executor: SingleThreadedExecutor) -> None:
        try:
            while not self._stop.is_set():
                executor.spin_once(timeout_sec=POLL_S)
        except ExternalShutdownException:  # the context was shut down (SIGINT, SIGTERM)
            return
        except _rclpy.RCLError:
            # A shutdown that lands while spin_once builds its wait set surfaces as RCLError.
            if self._context.ok():
                raise
