"""Every parameter of the node answers the parameter services (what `ros2 param dump` asks)."""

import pytest
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters, ListParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from lma_perception.ros.params import PARAMETERS, read_config

TIMEOUT_S = 30.0


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
