"""The segmentation node as a managed (lifecycle) node, for systems that start nodes in order.

Transitions (`lifecycle_msgs/srv/ChangeState` on `~/change_state`, `GetState` on
`~/get_state`):

- configure: read and check the parameters, create the publishers and `~/reset_memory`;
- activate: load the model, run one warm-up forward pass, subscribe to the cameras;
- deactivate: unsubscribe, stop the worker after its batch, drop the model and the GPU cache;
- cleanup: destroy the publishers (parameters stay: they are read-only);
- shutdown: whichever of the above the current state needs.

A failed configure (bad parameters) or activate (weights that do not load) is reported with one
log line and leaves the node where it was. With `autostart` (the default) the node configures and
activates itself, so `ros2 run lma_perception segment_lifecycle_node` just works; the launch
files pass `autostart: false` with `lifecycle:=true` and leave the transitions to a manager.
"""

from __future__ import annotations

import sys

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from lma_perception.ros.segment_node import SegmentationBehaviour, SetupError, run_node
from lma_perception.runtime.engine import SegmentationEngine


class LifecycleSegmentNode(SegmentationBehaviour, LifecycleNode):
    """The segmentation node, built up and torn down by lifecycle transitions."""

    def __init__(self, *, engine: SegmentationEngine | None = None, **node_kwargs) -> None:
        """Create the unconfigured node; `engine` replaces the one the parameters describe."""
        super().__init__('segment_node', **node_kwargs)
        self._engine_override = engine
        self._configured = self._active = False
        self.autostart: bool = self.declare_parameter(
            'autostart', True, ParameterDescriptor(
                description='Configure and activate at start; false leaves it to a lifecycle '
                'manager.', read_only=True),
        ).value

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read the parameters and create the publishers."""
        try:
            self._configure(self._engine_override)
        except SetupError as error:
            self.get_logger().error(f'cannot configure: {error}')
            return TransitionCallbackReturn.FAILURE
        self._configured = True
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model, warm it up and subscribe to the cameras."""
        try:
            self._activate()
        except SetupError as error:
            self.get_logger().error(f'cannot activate: {error}')
            self._deactivate()
            return TransitionCallbackReturn.FAILURE
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and free the model."""
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy the publishers."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Undo whatever the current state holds."""
        self._stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Undo whatever the current state holds; the node becomes unconfigured."""
        self._stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured

    def destroy_node(self) -> None:
        """Stop the worker after its current batch, then release the ROS entities."""
        self._stop()
        super().destroy_node()

    @property
    def active(self) -> bool:
        """Whether the node is active: subscribed, with a model loaded."""
        return self._active

    def _stop(self) -> None:
        if self._active:
            self._deactivate()
            self._active = False

    def _release(self) -> None:
        if self._configured:
            self._cleanup()
            self._configured = False


def _make_node() -> LifecycleSegmentNode:
    node = LifecycleSegmentNode()
    if node.autostart:
        for trigger in (node.trigger_configure, node.trigger_activate):
            if trigger() != TransitionCallbackReturn.SUCCESS:
                node.destroy_node()
                raise SetupError('the node could not start; see the error above')
    return node


def main(args: list[str] | None = None) -> int:
    """Run the lifecycle node until SIGINT or SIGTERM; exit status 1 when autostart fails."""
    return run_node(_make_node, args)


if __name__ == '__main__':
    sys.exit(main())
