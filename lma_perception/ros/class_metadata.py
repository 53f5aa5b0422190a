"""What the label values mean, for the nodes that read them: read-only parameters, LabelInfo.

`class_names`, `class_train_ids` and `class_colors` describe the model's classes (as segnet
does), in train-id order: the label value `class_train_ids[i]` is class `class_names[i]`,
drawn in `class_colors[i]` (`#rrggbb`) in the colour mask; 255 is unlabelled. They come from
`lma_perception.labels`, the one source of the class table, and are read-only: an override that
differs is refused, since it could only describe the labels wrongly.

Where `vision_msgs` is installed (a ROS install; it has no PyPI wheel), `label_info` carries the
same table as a `vision_msgs/LabelInfo`, transient local so that a late subscriber gets it, as
the vision_msgs segmentation convention has it. Without vision_msgs that topic is absent.
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from lma_perception.labels import IGNORE_INDEX, TRAIN_LABELS
from lma_perception.ros.params import ParameterError

try:  # only in a ROS install
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:
    LabelInfo = VisionClass = None

LABEL_INFO_TOPIC = 'label_info'
LABEL_INFO_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
UNLABELED_NAME = 'unlabeled'


def class_table() -> dict[str, list[Any]]:
    """Return the class parameters and their values, in train-id order."""
    return {
        'class_names': [label.name for label in TRAIN_LABELS],
        'class_train_ids': [label.train_id for label in TRAIN_LABELS],
        'class_colors': ['#{:02x}{:02x}{:02x}'.format(*label.color) for label in TRAIN_LABELS],
    }


_DESCRIPTIONS = {
    'class_names': 'Class of each label value, in train-id order (255 is unlabeled).',
    'class_train_ids': 'Label value of each class in class_names.',
    'class_colors': 'Colour (#rrggbb) of each class in class_names in color_mask and overlay.',
}


def declare_class_parameters(node: Node) -> None:
    """Declare the read-only class parameters on `node`.

    Raises:
        ParameterError: an override gives them other values.
    """
    for name, value in class_table().items():
        descriptor = ParameterDescriptor(description=_DESCRIPTIONS[name], read_only=True)
        declared = (node.get_parameter(name) if node.has_parameter(name)
                    else node.declare_parameter(name, value, descriptor)).value
        if list(declared) != value:
            raise ParameterError(f'parameter {name!r} is read-only: it describes the classes '
                                 f'of the labels ({value}); got {list(declared)}')


def create_label_info_publisher(node: Node) -> Publisher | None:
    """Publish the class table once on a transient-local `label_info`; None without vision_msgs."""
    if LabelInfo is None:
        return None
    publisher = node.create_publisher(LabelInfo, LABEL_INFO_TOPIC, LABEL_INFO_QOS)
    message = LabelInfo()
    message.header.stamp = node.get_clock().now().to_msg()
    message.class_map = [
        VisionClass(class_id=label.train_id, class_name=label.name) for label in TRAIN_LABELS
    ] + [VisionClass(class_id=IGNORE_INDEX, class_name=UNLABELED_NAME)]
    message.threshold = 0.0
    publisher.publish(message)
    return publisher
