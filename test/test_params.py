import pytest
from rcl_interfaces.srv import GetParameters, ListParameters
from rclpy.node import Node
from rclpy.parameter import Parameter

from lma_perception.ros.params import PARAMETERS
from lma_perception.ros.segment_node import SegmentNode, SetupError

TIMEOUT_S = 30.0


@pytest.fixture(scope='module')
def engine():
    from lma_perception.models import create_model
    from lma_perception.runtime.engine import EngineConfig, SegmentationEngine

    return SegmentationEngine(
        create_model('lma_erfnet').eval(), EngineConfig(device='cpu', input_size=(64, 128))
    )


@pytest.mark.parametrize('name, value, message', [
    ('cameras', [''], "parameter 'cameras'"),
    ('cameras', ['front', 'front'], 'unique'),
    ('device', 'gpu', "unknown device 'gpu'; use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ('precision', 'int8', 'expected one of fp32, fp16, bf16'),
    ('input_size', [60, 128], 'both positive multiples of 8'),
    ('input_size', [64], 'both positive multiples of 8'),
    ('memory_length', -1, "parameter 'memory_length'.*out of range. Min: 0, Max: 64"),
    ('memory_length', 1_000_000, "parameter 'memory_length'.*out of range. Min: 0, Max: 64"),
    ('write_policy', 'sometimes', 'expected one of always, adaptive'),
    ('write_threshold', 2.5, 'write_threshold out of range Min: 0.0, Max: 2.0'),
    ('write_threshold', 3, "'write_threshold' = 3.0: must be in [0.0, 2.0]"),
    ('output_resolution', 'full', 'expected one of input, network'),
    ('overlay_alpha', 1.5, 'overlay_alpha out of range Min: 0.0, Max: 1.0'),
    ('max_batch_size', 0, "parameter 'max_batch_size'.*out of range. Min: 1"),
    ('reset_gap_s', 0.0, 'reset_gap_s out of range'),
    ('reset_gap_s', -1, "parameter 'reset_gap_s' = -1.0: must be in"),
    ('reset_gap_s', 'soon', "parameter 'reset_gap_s' = 'soon': expected a number"),
    ('publish_overlay', 'yes', "expecting type 'BOOL'"),
    ('front.image_topic', 'bad topic', "parameter 'front.image_topic'"),
])
def test_invalid_parameters_are_refused_by_name(engine, ros_context, name, value, message):
    overrides = [Parameter('cameras', value=['front']), Parameter(name, value=value)]
    pattern = message.replace('[', r'\[').replace(']', r'\]').replace('(', r'\(')
    with pytest.raises(SetupError, match=pattern):
        SegmentNode(engine=engine, context=ros_context, parameter_overrides=overrides)


def test_ranges_and_options_are_in_the_descriptors(engine, ros_context):
    node = SegmentNode(engine=engine, context=ros_context)
    try:
        (memory,) = node.describe_parameters(['memory_length'])
        assert (memory.integer_range[0].from_value, memory.integer_range[0].to_value) == (0, 64)
        (threshold,) = node.describe_parameters(['write_threshold'])
        assert threshold.floating_point_range[0].to_value == 2.0
        (policy,) = node.describe_parameters(['write_policy'])
        assert policy.additional_constraints == 'one of: always, adaptive'
        assert all(d.read_only for d in node.describe_parameters(list(PARAMETERS)))
    finally:
        node.destroy_node()


def test_every_parameter_is_readable_over_the_parameter_services(engine, ros_context):
    """What `ros2 param dump` does: list the names, then get them all in one request."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    node = SegmentNode(engine=engine, context=ros_context)
    client_node = Node('param_client', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(client_node)

    def call(service_type, name, request):
        client = client_node.create_client(service_type, f'/segment_node/{name}')
        assert client.wait_for_service(timeout_sec=TIMEOUT_S)
        future = client.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=TIMEOUT_S)
        return future.result()

    try:
        names = call(ListParameters, 'list_parameters', ListParameters.Request()).result.names
        assert 'input_size' in names and 'camera.image_topic' in names
        values = call(GetParameters, 'get_parameters', GetParameters.Request(names=names)).values
        assert len(values) == len(names)
        input_size = values[names.index('input_size')]
        assert not input_size.integer_array_value and not input_size.byte_array_value
    finally:
        executor.shutdown()
        client_node.destroy_node()
        node.destroy_node()
        assert rclpy.ok(context=ros_context)
