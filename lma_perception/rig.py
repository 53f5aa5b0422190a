"""Camera rigs: a node parameter file that lists cameras, split into one node per camera.

A rig file is the segmentation node's own parameter file (see `config/rig_front3.yaml`):
`cameras` lists the camera names and `<camera>.image_topic` their input topics. One node can
serve the whole rig (one model, batched cameras), or each camera can get a node of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class RigError(ValueError):
    """A rig file that cannot be used."""


def load_rig(path: str | Path) -> dict[str, Any]:
    """Return the node parameters of a rig file: its first node section with `cameras`."""
    path = Path(path)
    try:
        sections = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RigError(f'{path}: cannot read the rig file ({error})') from None
    for section in (sections or {}).values() if isinstance(sections, dict) else ():
        parameters = section.get('ros__parameters') if isinstance(section, dict) else None
        if isinstance(parameters, dict) and parameters.get('cameras'):
            return parameters
    raise RigError(f'{path}: no node section with a `cameras` list under ros__parameters')


def camera_parameters(rig: dict[str, Any], camera: str) -> dict[str, Any]:
    """Return the parameters of a node that serves only `camera` of the rig."""
    if camera not in rig['cameras']:
        raise RigError(f'camera {camera!r} is not in the rig ({", ".join(rig["cameras"])})')
    others = set(rig['cameras']) - {camera}
    parameters = {key: value for key, value in rig.items() if key not in others}
    parameters['cameras'] = [camera]
    parameters['max_batch_size'] = 1
    return parameters


def input_topics(rig: dict[str, Any]) -> list[str]:
    """Return the absolute image topics of the rig's cameras, for a node in the root namespace.

    A camera without `<camera>.image_topic` reads `<camera>/image`, the node's default; one with
    `<camera>.transport: compressed` reads `<image_topic>/compressed` (image_transport's name).
    """
    topics = []
    for camera in rig['cameras']:
        settings = rig.get(camera) or {}
        topic = settings.get('image_topic', f'{camera}/image')
        if settings.get('transport', 'raw') != 'raw':
            topic = f'{topic}/{settings["transport"]}'
        topics.append(topic if topic.startswith('/') else f'/{topic}')
    return topics
