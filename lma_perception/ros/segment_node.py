"""The segmentation node: N cameras, one model, one batched forward pass per round.

Threads. A SingleThreadedExecutor runs the image callbacks, the `~/reset_memory` service and
the diagnostics timer; an image callback decodes the message, hands it to its camera's
`CameraStream` (which decides whether the memory carries over) and stores it as the camera's
newest frame. One worker thread, woken through a condition variable, takes the newest frame of
every ready camera and segments them together, each camera reading its own memory. A plain worker
thread was chosen over a MultiThreadedExecutor with callback groups because inference then never
occupies an executor thread: callbacks, the service and diagnostics stay responsive during a
forward pass, exactly one batch runs at a time by construction, and the stored-frame handover is
one small lock instead of a protocol between callback groups. PyTorch releases the GIL while it
computes, so the executor keeps receiving.

Memory stays bounded: one pending message per camera, fixed-length memories and latency
windows, and inference under `torch.inference_mode` inside the engine.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import (
    QoSMessageLostInfo,
    QoSRequestedIncompatibleQoSInfo,
    SubscriptionEventCallbacks,
)
from rclpy.executors import SingleThreadedExecutor
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo, RCLError, Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from lma_perception.codecs import ImageFormatError
from lma_perception.continuity import FrameKey, stamp_to_ns
from lma_perception.ros.camera_info import CameraInfoRelay
from lma_perception.ros.class_metadata import (
    create_label_info_publisher,
    declare_class_parameters,
)
from lma_perception.ros.compressed import (
    input_encoding,
    input_msg_to_rgb,
    message_type,
    transport_topic,
)
from lma_perception.ros.diagnostics import HealthLimits, camera_status
from lma_perception.ros.outputs import CameraOutputs
from lma_perception.ros.params import NodeConfig, ParameterError, read_config, reject_unknown
from lma_perception.ros.shutdown_watchdog import ShutdownWatchdog
from lma_perception.ros.signals import StopOnSignal
from lma_perception.runtime.backend_names import CPU_RUNTIMES
from lma_perception.runtime.device import free_device_memory
from lma_perception.runtime.engine import SegmentationEngine
from lma_perception.runtime.latest_frames import LatestFrames
from lma_perception.runtime.memory_budget import (
    MemoryBudgetError,
    available_bytes,
    check_budget,
    memory_entry_bytes,
)
from lma_perception.runtime.stream import (
    CameraStream,
    StreamFrame,
    StreamSnapshot,
    segment_frames,
)

# Camera drivers publish reliable or best effort; a best-effort reader matches both (REP-2003).
# Depth 1: a frame that waits while a newer one exists only adds latency.
INPUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
OUTPUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=2,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
LOG_PERIOD_S = 10.0  # the least time between two per-frame log lines of a kind
SPIN_POLL_S = 0.1  # how long a stop request may wait for the executor
# From a stop request to the end of the process: the worker's last batch (seconds for a large
# batch on a CPU), the entities, the DDS participant and the context.
SHUTDOWN_TIMEOUT_S = 15.0


class SetupError(RuntimeError):
    """The node cannot start: bad parameters or a model that does not load."""


@dataclass(frozen=True)
class _Pending:
    header: Header
    frame: StreamFrame


class SegmentationBehaviour:
    """What the plain and the lifecycle segmentation node share, in their lifecycle's steps.

    `_configure` reads the parameters and builds the publishers, `_activate` loads the model
    and subscribes, `_deactivate` undoes that (the model and the GPU cache are freed),
    `_cleanup` destroys the publishers. The plain `SegmentNode` runs the first two when it is
    made; `LifecycleSegmentNode` (`lifecycle_node.py`) runs each on its transition.
    """

    # None while inactive, so destroy_node also works after a failed start.
    _frames: LatestFrames[_Pending] | None = None
    _worker: threading.Thread | None = None

    def _configure(self, engine: SegmentationEngine | None) -> None:
        try:
            self._config: NodeConfig = read_config(self)
            declare_class_parameters(self)
        except ParameterError as error:
            raise SetupError(str(error)) from None
        self._given_engine = engine
        self._engine: SegmentationEngine | None = None
        self._device = ''
        # Held by the worker for a whole batch and by the reset service: memories change in one
        # thread at a time, and a reset answered is a reset done.
        self._memory_lock = threading.Lock()
        self._streams: list[CameraStream] = []
        self._inputs: list[Subscription] = []
        self._diagnostics_timer: Timer | None = None
        self._outputs: list[CameraOutputs] = []
        self._camera_infos: list[CameraInfoRelay] = []
        self._loggers: list[RcutilsLogger] = []
        with _topic_clash_as_setup_error():
            self._create_publishers()

    def _create_publishers(self) -> None:
        for camera in self._config.cameras:
            self._outputs.append(CameraOutputs(
                self, camera.name, OUTPUT_QOS,
                color_mask=self._config.publish_color_mask,
                overlay=self._config.publish_overlay,
                confidence=self._config.publish_confidence,
                overlay_alpha=self._config.overlay_alpha,
            ))
            self._camera_infos.append(CameraInfoRelay(self, camera.name, OUTPUT_QOS))
            self._loggers.append(self.get_logger().get_child(camera.name))
        self._label_info = create_label_info_publisher(self)
        self._reset_service = self.create_service(
            Trigger, '~/reset_memory', self._on_reset_memory
        )
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

    def _activate(self) -> None:
        engine = self._given_engine
        if engine is None:
            engine = _load_engine(self._config)
        else:
            _check_memory_budget(engine, self._config)
        self._engine = engine
        self._device = str(self._engine.device)
        _warm_up(self._engine)
        self._frames = LatestFrames(len(self._config.cameras))
        with _topic_clash_as_setup_error():
            self._subscribe()
        try:
            reject_unknown(self)  # now that every topic's qos_overrides are declared too
        except ParameterError as error:
            raise SetupError(str(error)) from None
        # Steady clock: diagnostics keep coming (and report silence) when sim time stops.
        self._diagnostics_timer = self.create_timer(
            self._config.diagnostics_period_s,
            self._publish_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        # A daemon, so a node that is never destroyed cannot keep the process from exiting;
        # destroy_node() is what stops it properly.
        self._worker = threading.Thread(
            target=self._run_worker, name='segment_worker', daemon=True
        )
        self._worker.start()
        memory = self._streams[0].memory if self._streams else None
        memory = 'off' if memory is None else f'T={memory.length}'
        self.get_logger().info(
            f'segmenting {len(self._streams)} camera(s) '
            f'({", ".join(f"{s.name} <- {s.source}" for s in self._streams)}) on '
            f'{self._device} ({self._engine.backend_name}), network input '
            f'{self._engine.input_size[1]}x{self._engine.input_size[0]}, memory {memory}'
        )

    def _subscribe(self) -> None:
        streams = []
        for index, camera in enumerate(self._config.cameras):
            # Callbacks only run once the node spins, after this loop has built every stream.
            subscription = self.create_subscription(
                message_type(camera.transport),
                transport_topic(camera.image_topic, camera.transport),
                lambda msg, info, index=index: self._on_image(index, msg, info),
                INPUT_QOS,
                event_callbacks=SubscriptionEventCallbacks(
                    incompatible_qos=lambda info, index=index: self._on_incompatible_qos(
                        index, info
                    ),
                    message_lost=lambda info, index=index: self._on_message_lost(index, info),
                ),
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
            self._inputs.append(subscription)
            self._inputs.append(self.create_subscription(
                CameraInfo, camera.camera_info_topic, self._camera_infos[index].receive,
                INPUT_QOS,
            ))
            streams.append(CameraStream(
                camera.name,
                # `memory_length: 0` turns the memory off even with an engine given.
                self._engine.new_memory() if self._config.engine.memory_length else None,
                source=subscription.topic_name,
                max_gap_s=self._config.reset_gap_s,
                latency_window=self._config.latency_window,
            ))
        self._streams = streams

    def _deactivate(self) -> None:
        """Stop the worker after its current batch, unsubscribe and free the model."""
        if self._frames is not None:
            self._frames.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        self._frames = self._worker = None
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        with self._memory_lock:
            self._streams = []
        self._engine = None
        free_device_memory()

    def _cleanup(self) -> None:
        """Destroy what `_configure` made: publishers and the reset service."""
        for outputs in self._outputs:
            outputs.destroy()
        for relay in self._camera_infos:
            relay.destroy()
        for publisher in (self._diagnostics, self._label_info):
            if publisher is not None:
                self.destroy_publisher(publisher)
        self.destroy_service(self._reset_service)
        self._outputs, self._camera_infos, self._loggers = [], [], []

    @property
    def device(self) -> str:
        """The device the model runs on (`cpu`, `cuda:0`)."""
        return self._device

    @property
    def idle(self) -> bool:
        """True when every received frame has been segmented (or dropped) and published."""
        return self._frames is None or self._frames.idle

    def camera_snapshots(self) -> list[StreamSnapshot]:
        """Return the current figures of every camera, as the diagnostics show them."""
        now_s = time.monotonic()
        return [stream.snapshot(now_s) for stream in self._streams]

    def _on_image(self, index: int, msg: Image | CompressedImage, info: MessageInfo) -> None:
        """Decode the frame and hand it to its stream; the worker takes the newest one."""
        arrived_s = time.monotonic()
        stream = self._streams[index]
        sequence, publisher = info['publication_sequence_number'], info['publisher_gid']
        if sequence is not None and publisher is not None:  # where the RMW reports them
            stream.track_sequence(arrived_s, bytes(publisher['data']), sequence)
        encoding = input_encoding(msg)
        try:
            image = input_msg_to_rgb(msg)
        except ImageFormatError as error:
            stream.record_bad_input(arrived_s, str(error), encoding=encoding)
            self._loggers[index].error(
                f'camera {stream.name}: bad image on {stream.source}: {error}',
                throttle_duration_sec=LOG_PERIOD_S,
            )
            return
        decode_ms = (time.monotonic() - arrived_s) * 1e3
        height, width = image.shape[:2]
        key = FrameKey(stamp_to_ns(msg.header.stamp), msg.header.frame_id, height, width)
        # Before the handover: the worker must never take the frame ahead of its epoch.
        epoch, reason = stream.receive(key, arrived_s, encoding=encoding)
        if reason is not None:
            self._loggers[index].info(
                f'camera {stream.name}: memory cleared ({reason})',
                throttle_duration_sec=LOG_PERIOD_S,
            )
        frame = StreamFrame(image, epoch, arrived_s, decode_ms)
        if self._frames.put(index, _Pending(msg.header, frame)):
            stream.count_dropped()

    def _on_message_lost(self, index: int, info: QoSMessageLostInfo) -> None:
        stream = self._streams[index]
        stream.count_lost(time.monotonic(), info.total_count_change)
        self._loggers[index].warning(
            f'camera {stream.name}: {info.total_count} frame(s) lost in transport on '
            f'{stream.source} so far',
            throttle_duration_sec=LOG_PERIOD_S,
        )

    def _on_incompatible_qos(self, index: int, info: QoSRequestedIncompatibleQoSInfo) -> None:
        stream = self._streams[index]
        policy = QoSPolicyKind(info.last_policy_kind).name.lower()
        problem = f'a publisher on {stream.source} has incompatible QoS ({policy})'
        stream.record_warning(problem)
        self._loggers[index].warning(problem, throttle_duration_sec=LOG_PERIOD_S)

    def _on_reset_memory(
        self, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        with self._memory_lock:
            for stream in self._streams:
                stream.reset_memory('service')
        response.success = True
        response.message = f'cleared the memory of {len(self._streams)} camera(s)'
        self.get_logger().info(response.message, throttle_duration_sec=LOG_PERIOD_S)
        return response

    def _run_worker(self) -> None:
        while True:
            batch = self._frames.take(self._config.max_batch_size)
            if not batch:
                return
            try:
                with self._memory_lock:
                    self._segment(batch)
            except Exception as error:  # keep serving the cameras; report what failed
                names = ', '.join(self._streams[index].name for index, _ in batch)
                self.get_logger().error(
                    f'segmenting {names} failed: {error!r}',
                    throttle_duration_sec=LOG_PERIOD_S,
                )
                for index, _ in batch:
                    self._streams[index].record_failure(repr(error))
            finally:
                self._frames.task_done()

    def _segment(self, batch: list[tuple[int, _Pending]]) -> None:
        streams = [(self._streams[index], pending.frame) for index, pending in batch]
        want_confidence = any(self._outputs[index].wants_confidence for index, _ in batch)
        results = segment_frames(
            self._engine, streams, output_size=self._config.output_resolution,
            confidence=want_confidence,
        )
        for (index, pending), result in zip(batch, results, strict=True):
            started = time.perf_counter()
            outputs = self._outputs[index].publish(
                pending.header, pending.frame.image, result.labels, result.confidence
            )
            image_size = pending.frame.image.shape[1::-1]
            if self._camera_infos[index].publish(
                pending.header, image_size, result.labels.shape[::-1]
            ):
                outputs += ('camera_info',)
            self._streams[index].record_output(
                pending.frame, result, time.monotonic(),
                publish_ms=(time.perf_counter() - started) * 1e3, outputs=outputs,
            )

    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()
        now_s = time.monotonic()
        limits = HealthLimits(
            self._config.no_input_timeout_s, self._config.latency_budget_ms,
            self._config.loss_warn_fraction,
        )
        array = DiagnosticArray()
        array.header.stamp = now.to_msg()
        array.status = [
            camera_status(stream.snapshot(now_s), now.nanoseconds, self._device, limits)
            for stream in self._streams
        ]
        self._diagnostics.publish(array)


class SegmentNode(SegmentationBehaviour, Node):
    """Segments the images of every configured camera and publishes labels and diagnostics."""

    def __init__(self, *, engine: SegmentationEngine | None = None, **node_kwargs) -> None:
        """Create the node; `engine` replaces the one the parameters describe (tests, benchmarks).

        With an `engine` given, weights, device, precision, input size, memory length and write
        policy are the engine's; `memory_length: 0` still turns the memory off.

        Raises:
            SetupError: a parameter is invalid or the model cannot be loaded.
        """
        super().__init__('segment_node', **node_kwargs)
        self._configure(engine)
        self._activate()

    def destroy_node(self) -> None:
        """Stop the worker after its current batch, then release the ROS entities."""
        if hasattr(self, '_memory_lock'):
            self._deactivate()
        super().destroy_node()


def _check_memory_budget(engine: SegmentationEngine, config: NodeConfig) -> None:
    """Refuse memories and a batch that the engine's device cannot hold (SetupError)."""
    memory_length = engine.config.memory_length if (
        engine.uses_memory and config.engine.memory_length) else 0
    entry = 0
    if memory_length:
        model = engine.model
        entry = memory_entry_bytes(model.config.key_dim, model.config.value_dim, model.stride,
                                   engine.input_size, engine.dtype)
    available, what = available_bytes(engine.device)
    cameras = len(config.cameras)
    try:
        check_budget(
            cameras=cameras, memory_length=memory_length, entry_bytes=entry,
            input_size=engine.input_size, batch_size=min(config.max_batch_size, cameras),
            available=available, what=what,
            input_size_name="'input_size'" if config.engine.input_size is not None
            else "'input_size' (the checkpoint's)",
        )
    except MemoryBudgetError as error:
        raise SetupError(str(error)) from None


def _warm_up(engine: SegmentationEngine) -> None:
    """One forward pass without memory, so the first camera frame is not the slow one."""
    height, width = engine.input_size
    engine.segment([np.zeros((height, width, 3), np.uint8)], [None])


def _load_engine(config: NodeConfig) -> SegmentationEngine:
    """Load the model, check the memory budget, then build the configured backend.

    The budget is checked on a torch fp32 engine of the same model (building one costs
    nothing), so that a runtime never exports and compiles a graph at a size the device
    cannot hold before the one message saying so.
    """
    source = config.weights or 'the shipped weights'
    probe_device = 'cpu' if config.engine.backend in CPU_RUNTIMES else config.engine.device
    try:
        probe = SegmentationEngine.from_checkpoint(
            config.weights or None,
            replace(config.engine, backend='torch', precision='fp32', device=probe_device),
        )
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise SetupError(f'cannot load the model from {source}: {error}') from None
    _check_memory_budget(probe, config)
    try:
        engine = SegmentationEngine(
            probe.model, replace(config.engine, input_size=probe.input_size)
        )
    except (ValueError, RuntimeError) as error:
        raise SetupError(f'cannot load the model from {source}: {error}') from None
    engine.checkpoint = probe.checkpoint
    return engine


def main(args: list[str] | None = None, stop: StopOnSignal | None = None) -> int:
    """Run the node until SIGINT or SIGTERM; exit status 1 when it cannot start.

    `stop`: signal handling already installed by the caller (before its imports).
    """
    return run_node(SegmentNode, args, stop)


def run_node(
    make_node: Callable[[], Node], args: list[str] | None, stop: StopOnSignal | None = None
) -> int:
    """Make the node, spin it until SIGINT or SIGTERM; 1 when it raises SetupError.

    On a signal the worker finishes its batch and is joined, the node is destroyed, and only
    then the context shuts down, so nothing publishes into a context that is gone. That shutdown
    has SHUTDOWN_TIMEOUT_S; a process stuck in it exits with status 1 (`ShutdownWatchdog`).
    """
    logger = rclpy.logging.get_logger('segment_node')
    with contextlib.ExitStack() as stack:
        if stop is None:
            stop = stack.enter_context(StopOnSignal())
        # Left last: it bounds every step of the shutdown, the context's included.
        watchdog = stack.enter_context(ShutdownWatchdog(SHUTDOWN_TIMEOUT_S, logger.fatal))
        with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
            try:
                node = make_node()
            except SetupError as error:
                logger.fatal(str(error))
                return 1
            with node:
                executor = SingleThreadedExecutor()
                executor.add_node(node)
                try:
                    while not stop.stop.is_set():
                        executor.spin_once(timeout_sec=SPIN_POLL_S)
                finally:
                    watchdog.start('stopping the executor')
                executor.shutdown()
                watchdog.step('destroying the node (worker, entities, DDS participant)')
            watchdog.step('shutting the ROS context down')
    return 0


@contextlib.contextmanager
def _topic_clash_as_setup_error():
    """Turn a topic that exists with another message type into a SetupError naming it."""
    try:
        yield
    except RCLError as error:
        raise SetupError(
            f'cannot create the node\'s topics: {str(error).split(", at ")[0]} (does an '
            'image_topic name one of the node\'s own topics, /diagnostics or an output?)'
        ) from None


if __name__ == '__main__':
    sys.exit(main())
