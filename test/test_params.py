import pytest
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters, ListParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from lma_perception.ros.params import PARAMETERS, read_config
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


def call(executor, node, service_type, name, request):
    client = node.create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=TIMEOUT_S), f'{name} is not offered'
    future = client.call_async(request)
    executor.spin_until_future_complete(future, timeout_sec=TIMEOUT_S)
    assert future.done(), f'{name} did not answer'
    return future.result()


@pytest.fixture
def graph(ros_context):
    executor = SingleThreadedExecutor(context=ros_context)
    nodes = []

    def add(name, **kwargs):
        node = Node(name, context=ros_context, **kwargs)
        executor.add_node(node)
        nodes.append(node)
        return node

    yield executor, add
    executor.shutdown()
    for node in nodes:
        node.destroy_node()


def test_get_parameters_answers_every_declared_parameter(graph):
    executor, add = graph
    config = read_config(add('segment_node'))
    asker = add('asker')
    listed = call(executor, asker, ListParameters, '/segment_node/list_parameters',
                  ListParameters.Request()).result.names
    assert set(PARAMETERS) <= set(listed)

    # One unset parameter in a request makes rclpy answer the whole request with nothing.
    values = call(executor, asker, GetParameters, '/segment_node/get_parameters',
                  GetParameters.Request(names=listed)).values
    assert len(values) == len(listed)
    assert all(value.type != ParameterType.PARAMETER_NOT_SET for value in values)
    input_size = values[listed.index('input_size')]
    assert input_size.type == ParameterType.PARAMETER_INTEGER_ARRAY
    assert list(input_size.integer_array_value) == [0, 0]
    assert config.engine.input_size is None  # [0, 0]: the checkpoint's size


def test_input_size_override_is_read(graph):
    _, add = graph
    node = add('segment_node', parameter_overrides=[Parameter('input_size', value=[256, 512])])
    assert read_config(node).engine.input_size == (256, 512)
