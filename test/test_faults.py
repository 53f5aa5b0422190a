"""Fault injection: malformed images, signals, bad parameters and checkpoints, corrupt bags.

Each case checks what a user sees: no traceback, the exit status, one clear message, and that
the good camera kept publishing. The malformed images run by the few hundred here; `-m fuzz`
runs them by the ten thousand.
"""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import next_domain_id
from diagnostic_msgs.msg import DiagnosticStatus
from safetensors.torch import load_file, save_file
from sensor_msgs.msg import Image
from test_segment_node import Probe, _image, _pixels, wait_until

from lma_perception.data.rosbag import BagFrame, optical_frame, write_bag
from lma_perception.models import create_model, save_checkpoint
from lma_perception.models.checkpoint import METADATA_KEY, CheckpointError, load_checkpoint
from lma_perception.models.erfnet import MAX_INPUT_SIDE
from lma_perception.ros.segment_node import LOG_PERIOD_S
from lma_perception.runtime.memory_budget import (
    FORWARD_BYTES_PER_PIXEL,
    available_bytes,
    memory_entry_bytes,
)
from lma_perception.synthetic.generator import SynthConfig, generate_sequence

TIMEOUT_S = 60.0
CI_MALFORMED = 300
FUZZ_MALFORMED = 10_000
# What a clean shutdown must never print.
SHUTDOWN_FAILURES = ('Traceback', 'Failed to publish', 'context is invalid', 'InvalidHandle')


# --- malformed images ------------------------------------------------------------------------

# Field changes that make an rgb8 64×128 image unreadable, one kind of fault each.
MALFORMED_KINDS = {
    'unknown encoding': {'encoding': 'jpeg'},
    'empty encoding': {'encoding': ''},
    'garbage encoding': {'encoding': '\u00ff\u0000rgb8'},
    '16-bit': {'encoding': 'mono16', 'step': 256},
    'float': {'encoding': '32FC1', 'step': 512},
    'step too small': {'step': 100},
    'step not whole pixels': {'step': 385},
    'data too short': {'data': bytes(10)},
    'data empty': {'data': b''},
    'zero width': {'width': 0, 'step': 0},
    'zero height': {'height': 0},
    'empty image': {'height': 0, 'width': 0, 'step': 0, 'data': b''},
    'huge declared size': {'height': 100_000, 'width': 100_000, 'step': 300_000},
    'odd yuv width': {'encoding': 'yuv422', 'width': 127, 'step': 254},
    'bayer odd size': {'encoding': 'bayer_rggb8', 'height': 63, 'width': 127, 'step': 127},
    'mono8 step short': {'encoding': 'mono8', 'step': 64},
    'rgba data short': {'encoding': 'rgba8', 'step': 512},
    'step overflow': {'step': 2**32 - 1},
}


def malformed_images(count: int, seed: int = 0):
    """Yield `count` malformed images, every kind in turn, with random pixels."""
    kinds = list(MALFORMED_KINDS.values())
    rng = np.random.default_rng(seed)
    for index in range(count):
        msg = _image(rng.integers(0, 256, (64, 128, 3), dtype=np.uint8), 10**9 + index)
        for field, value in kinds[index % len(kinds)].items():
            setattr(msg, field, value)
        yield msg


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('weights') / 'tiny.safetensors'
    save_checkpoint(path, create_model('lma_erfnet'), input_size=(64, 128))
    return path


class NodeProcess:
    """The segmentation node as a user runs it, its output collected line by line."""

    def __init__(self, *ros_args: str, domain: int) -> None:
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'lma_perception.ros.segment_node', '--ros-args', *ros_args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout))
        self._reader.start()

    @property
    def output(self) -> str:
        return ''.join(self.lines)

    def wait(self, timeout_s: float = TIMEOUT_S) -> int | str:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return 'still running'
        finally:
            self.process.kill()
            self._reader.join(timeout=10)


def _good_frame(index: int) -> Image:
    # Every frame names another frame_id, so every frame clears the memory and would log it.
    return _image(_pixels(seed=index % 4), 10**9 + index * 10**7, frame_id=f'good_{index % 2}')


def _malformed_images_then_signal(checkpoint, ros_context, count: int, signum: int) -> None:
    node = NodeProcess('-p', 'cameras:=[good, bad]', '-p', f'weights:={checkpoint}',
                       '-p', 'device:=cpu', '-p', 'diagnostics_period_s:=0.2',
                       '-p', 'latency_budget_ms:=60000.0',
                       domain=ros_context.get_domain_id())
    probe = Probe(ros_context, ['good', 'bad'])
    for camera in ('good', 'bad'):
        probe.listen(camera, 'labels')
    from lma_perception.ros.spinning import BackgroundSpinner

    started = time.monotonic()
    with BackgroundSpinner(ros_context, probe):
        try:
            assert wait_until(lambda: 'segmenting 2 camera' in node.output, TIMEOUT_S), (
                node.output)
            probe.send_until_labelled('good', _good_frame(0), TIMEOUT_S)
            good_labels = probe.received[('good', 'labels')]
            before = len(good_labels)
            for index, msg in enumerate(malformed_images(count), start=1):
                probe.send('bad', msg)
                if index % 10 == 0:
                    probe.send('good', _good_frame(index))
                    time.sleep(0.01)
            # The good camera kept publishing through the fuzz, and still does afterwards.
            assert len(good_labels) > before
            probe.send_until_labelled('good', _good_frame(count + 1), TIMEOUT_S)

            def bad_is_named():
                status = probe.status('bad')
                return status is not None and status.level == DiagnosticStatus.ERROR and (
                    'bad input' in status.message)
            assert wait_until(bad_is_named, TIMEOUT_S), probe.status('bad')
            assert probe.status('good').level != DiagnosticStatus.ERROR, probe.status('good')
            assert probe.received[('bad', 'labels')] == []
            # The signal lands while frames are still coming in and being segmented.
            for index in range(5):
                probe.send('good', _good_frame(count + 2 + index))
            node.process.send_signal(signum)
            for index in range(5):
                probe.send('good', _good_frame(count + 7 + index))
            status = node.wait()
        finally:
            node.process.kill()
    elapsed_s = time.monotonic() - started
    output = node.output
    assert status == 0, output
    for failure in SHUTDOWN_FAILURES:
        assert failure not in output, output
    errors = [line for line in output.splitlines() if '[ERROR]' in line]
    assert all('bad image on /bad/image' in line for line in errors), errors
    # Throttled: every frame cleared the memory, the log says so once per period at most.
    cleared = [line for line in output.splitlines() if 'memory cleared' in line]
    assert 1 <= len(cleared) <= elapsed_s / LOG_PERIOD_S + 2, cleared


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_malformed_images_spare_the_good_camera_and_a_signal_stops_cleanly(
    checkpoint, ros_context, signum
):
    _malformed_images_then_signal(checkpoint, ros_context, CI_MALFORMED, signum)


@pytest.mark.fuzz
def test_ten_thousand_malformed_images(checkpoint, ros_context):
    _malformed_images_then_signal(checkpoint, ros_context, FUZZ_MALFORMED, signal.SIGINT)


def test_a_flood_of_memory_resets_is_logged_once_per_period(checkpoint, ros_context):
    from rclpy.node import Node
    from std_srvs.srv import Trigger

    node = NodeProcess('-p', f'weights:={checkpoint}', '-p', 'device:=cpu',
                       domain=ros_context.get_domain_id())
    client_node = Node('reset_flood', context=ros_context)
    client = client_node.create_client(Trigger, '/segment_node/reset_memory')
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(client_node)
    try:
        assert client.wait_for_service(timeout_sec=TIMEOUT_S), node.output
        started = time.monotonic()
        for _ in range(30):
            future = client.call_async(Trigger.Request())
            executor.spin_until_future_complete(future, timeout_sec=TIMEOUT_S)
            assert future.result().success
        elapsed_s = time.monotonic() - started
        node.process.send_signal(signal.SIGINT)
        assert node.wait() == 0, node.output
    finally:
        executor.shutdown()
        client_node.destroy_node()
        node.process.kill()
    cleared = [line for line in node.lines if 'cleared the memory' in line]
    assert 1 <= len(cleared) <= elapsed_s / LOG_PERIOD_S + 1, cleared


# --- bad parameters and checkpoints: one FATAL line, exit 1 -----------------------------------


def _tampered(source: Path, target: Path, *, metadata=None, tensors=None) -> Path:
    """Copy a checkpoint with its model metadata or tensors changed."""
    from safetensors import safe_open

    with safe_open(str(source), framework='pt') as file:
        info = json.loads(file.metadata()[METADATA_KEY])
    weights = load_file(str(source))
    if metadata is not None:
        metadata(info)
    if tensors is not None:
        tensors(weights)
    save_file(weights, str(target), metadata={METADATA_KEY: json.dumps(info)})
    return target


def _set(section: str, key: str, value):
    def change(info):
        info['model'][section][key] = value
    return change


def _poison(value: float):
    def change(weights):
        weights['decoder.output_conv.weight'][0, 0, 0, 0] = value
    return change


BAD_CHECKPOINTS = {
    'num_classes "20"': ({'metadata': _set('backbone', 'num_classes', '20')},
                         r"num_classes = '20': expected a whole number"),
    'key_dim "x"': ({'metadata': _set('lma', 'key_dim', 'x')},
                    r"key_dim = 'x': expected a whole number"),
    'input_size 800000x800000': (
        {'metadata': lambda info: info.__setitem__('input_size', [800000, 800000])},
        r'input_size \[800000, 800000\]: .*at most 8192'),
    'NaN weights': ({'tensors': _poison(float('nan'))}, 'NaN or infinite: decoder.output_conv'),
    'infinite weights': ({'tensors': _poison(float('inf'))}, 'NaN or infinite'),
}


@pytest.mark.parametrize('change, message', BAD_CHECKPOINTS.values(), ids=BAD_CHECKPOINTS)
def test_bad_checkpoints_are_refused_at_load(checkpoint, tmp_path, change, message):
    tampered = _tampered(checkpoint, tmp_path / 'tampered.safetensors', **change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tampered)


def test_a_code_running_pickle_is_refused_without_the_unsafe_advice(tmp_path):
    marker = tmp_path / 'ran'

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {marker}',))

    path = tmp_path / 'evil.pth'
    torch.save({'decoder.output_conv.weight': Payload()}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert 'refused: loading this file would run code' in message
    assert 'system' in message  # what it would have called
    assert 'weights_only' not in message and 'will likely succeed' not in message
    assert not marker.exists()


def test_training_refuses_a_memory_of_a_million_frames(tmp_path):
    from lma_perception.train.config import TrainConfig

    with pytest.raises(ValueError, match=r'memory_length must be in \[1, 64\], got 1000000'):
        TrainConfig(stage='single', data=str(tmp_path), output=str(tmp_path / 'run'),
                    memory_length=1_000_000)


def _fatal(ros_args: list[str], message: str, domain: int) -> None:
    node = NodeProcess(*ros_args, domain=domain)
    status = node.wait()
    output = node.output
    assert status == 1, output
    fatal = [line for line in output.splitlines() if '[FATAL]' in line]
    assert len(fatal) == 1 and message in fatal[0], output
    assert 'Traceback' not in output, output


def _side_that_fits() -> int:
    """A square network input side whose forward pass takes about a quarter of the host memory."""
    available, _ = available_bytes(torch.device('cpu'))
    side = math.isqrt(available // 4 // FORWARD_BYTES_PER_PIXEL) // 8 * 8
    return min(side, MAX_INPUT_SIDE)


_SIDE_THAT_FITS = _side_that_fits()
BAD_PARAMETERS = {
    'image_topic /diagnostics': (['cameras:=[front]', 'front.image_topic:=/diagnostics'],
                                 "cannot create the node's topics"),
    'memory_length 1000000': (['memory_length:=1000000'], "'memory_length'"),
    'infinite timeout': (['no_input_timeout_s:=.inf'], "'no_input_timeout_s'"),
    'infinite period': (['diagnostics_period_s:=.inf'], "'diagnostics_period_s'"),
    'huge latency window': (['latency_window:=1000000000'], "'latency_window'"),
    # Within the fixed bounds, beyond this machine's memory: one forward pass fits, the memories
    # of 64 cameras × 64 frames (13 times as much) do not.
    'memories beyond the memory available': (
        [f'cameras:=[{", ".join(f"c{i}" for i in range(64))}]',
         f'input_size:=[{_SIDE_THAT_FITS}, {_SIDE_THAT_FITS}]', 'memory_length:=64',
         'max_batch_size:=1'],
        "parameter 'memory_length' = 64: 64 camera(s) × 64 frames × "
        f"{memory_entry_bytes(16, 64, 8, (_SIDE_THAT_FITS,) * 2, torch.float32):,} bytes "),
    'a batch beyond the memory available': (
        [f'cameras:=[{", ".join(f"c{i}" for i in range(64))}]', 'input_size:=[8192, 8192]',
         'memory_length:=0', 'max_batch_size:=64'],
        "parameter 'input_size' = [8192, 8192]: a forward pass of 64 image(s) at 8192×8192 "
        "needs 1,717,986,918,400 bytes (1.6 TiB), but "),
    'misspelt parameter': (['memory_lenght:=3'],
                           "unknown parameter 'memory_lenght'; did you mean 'memory_length'?"),
    'misspelt camera parameter': (['cameras:=[front]', 'front.image_topik:=/x'],
                                  "did you mean 'front.image_topic'?"),
}


@pytest.mark.parametrize('parameters, message', BAD_PARAMETERS.values(), ids=BAD_PARAMETERS)
def test_bad_parameters_stop_the_node_with_one_fatal_line(checkpoint, parameters, message):
    ros_args = ['-p', f'weights:={checkpoint}', '-p', 'device:=cpu']
    for parameter in parameters:
        ros_args += ['-p', parameter]
    _fatal(ros_args, message, next_domain_id())


def test_a_wrongly_typed_checkpoint_stops_the_node_with_one_fatal_line(checkpoint, tmp_path):
    tampered = _tampered(checkpoint, tmp_path / 'typed.safetensors',
                         metadata=_set('backbone', 'num_classes', '20'))
    _fatal(['-p', f'weights:={tampered}', '-p', 'device:=cpu'],
           'cannot load the model from', next_domain_id())


# --- corrupt bags and signals to the commands ---------------------------------------------------


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    """Two cameras, 40 frames each at 17 Hz: long enough to be interrupted at a slow rate."""
    config = SynthConfig(width=128, height=64, frames=40, annotated_frame=39,
                         cameras=('front', 'front_left'))
    frames = [
        BagFrame(frame.camera, 10**18 + frame.frame * (10**9 // 17),
                 optical_frame(frame.camera), frame.image, frame.train_ids)
        for frame in generate_sequence(config, 'val', 0)
    ]
    return write_bag(tmp_path_factory.mktemp('bags') / 'synthetic', frames).path


@pytest.fixture
def garbage_bag(tmp_path):
    bag = tmp_path / 'garbage'
    bag.mkdir()
    (bag / 'metadata.yaml').write_bytes(np.random.default_rng(1).bytes(300))
    return bag


def _command(*args: str) -> subprocess.Popen:
    env = dict(os.environ, ROS_DOMAIN_ID=str(next_domain_id()))
    return subprocess.Popen([sys.executable, '-m', 'lma_perception.cli', *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize('command', [['replay'], ['live-eval'], ['bag', 'info'], ['eval']])
def test_a_bag_with_binary_garbage_for_metadata(garbage_bag, command):
    process = _command(*command, str(garbage_bag))
    out, err = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 1, out + err
    assert 'cannot open the bag' in err and 'Traceback' not in err, err


def test_eval_names_the_missing_metadata(bag, tmp_path):
    storage_only = tmp_path / 'storage_only'
    storage_only.mkdir()
    for file in bag.iterdir():
        if file.name != 'metadata.yaml':
            (storage_only / file.name).write_bytes(file.read_bytes())
    process = _command('eval', str(storage_only))
    out, err = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 1, out + err
    assert 'no metadata.yaml' in err and 'Traceback' not in err, err


def _interrupt(process: subprocess.Popen, signum: int, after_s: float,
               once: str | None = None) -> tuple[str, str]:
    """Signal `process` `after_s` seconds after its stderr shows `once` (or after its start)."""
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(process.stderr))
    reader.start()
    try:
        if once is not None:
            assert wait_until(lambda: any(once in line for line in err), TIMEOUT_S), err
        time.sleep(after_s)
        process.send_signal(signum)
        out = process.stdout.read()
        process.wait(timeout=TIMEOUT_S)
    finally:
        process.kill()
        reader.join(timeout=10)
    return out, ''.join(err)


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_live_eval_writes_a_partial_report_on_a_signal(bag, checkpoint, tmp_path, signum):
    report = tmp_path / 'live.json'
    process = _command('live-eval', str(bag), '--weights', str(checkpoint), '--device', 'cpu',
                       '--rate', '0.1', '--json', str(report))
    # Well into playback: the bag lasts 23 s at this rate.
    out, err = _interrupt(process, signum, 5.0, once='segmenting 2 camera')
    assert process.returncode == 0, out + err
    assert 'interrupted: partial report' in out, out
    assert 'Traceback' not in err, err
    written = json.loads(report.read_text())
    assert written['interrupted'] is True
    published = sum(camera['images_published'] for camera in written['cameras'])
    assert 0 < published < 80


def test_live_eval_stops_quietly_on_a_signal_during_start_up(bag, tmp_path):
    process = _command('live-eval', str(bag), '--device', 'cpu', '--json',
                       str(tmp_path / 'live.json'))
    out, err = _interrupt(process, signal.SIGINT, 0.5)  # still importing
    assert process.returncode == 0, out + err
    assert 'Traceback' not in err and 'KeyboardInterrupt' not in err, err


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_replay_exits_0_on_a_signal(bag, signum):
    process = _command('replay', str(bag), '--rate', '0.1')
    out, err = _interrupt(process, signum, 5.0)
    assert process.returncode == 0, out + err
    assert 'Traceback' not in err and 'KeyboardInterrupt' not in err, err
