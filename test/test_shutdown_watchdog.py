"""A shutdown that never finishes still ends the process: both ways out of `ShutdownWatchdog`."""

import subprocess
import sys

from lma_perception.ros.shutdown_watchdog import BACKSTOP_S, STUCK_EXIT_STATUS

TIMEOUT_S = 1.0
EXIT_TIMEOUT_S = 60

# A process whose shutdown step is stuck in one of three ways, then reports that it went on.
SCRIPT = '''
import ctypes
import sys
import threading
import time

from lma_perception.ros.shutdown_watchdog import ShutdownWatchdog


def destroy_node(how):
    if how == 'gil':  # a C call that keeps the GIL, as the DDS participant's deletion did
        ctypes.PyDLL(None).sleep(120)
    elif how == 'wait':  # a wait that releases it, as a join that never returns
        threading.Event().wait()


how, timeout_s, after_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
with ShutdownWatchdog(timeout_s, lambda line: print('FATAL', line, file=sys.stderr)) as watchdog:
    watchdog.start('stopping the executor')
    watchdog.step('destroying the node')
    destroy_node(how)
time.sleep(after_s)  # past both deadlines: a disarmed watchdog must not fire
print('shut down')
'''


def _run(how: str, tmp_path) -> subprocess.CompletedProcess:
    script = tmp_path / 'stuck_shutdown.py'
    script.write_text(SCRIPT)
    after_s = TIMEOUT_S + BACKSTOP_S + 1
    return subprocess.run(
        [sys.executable, str(script), how, str(TIMEOUT_S), str(after_s)],
        capture_output=True, text=True, timeout=EXIT_TIMEOUT_S,
    )


def test_a_shutdown_stuck_in_a_wait_ends_with_one_fatal_line(tmp_path):
    result = _run('wait', tmp_path)
    assert result.returncode == STUCK_EXIT_STATUS, result
    assert result.stderr.splitlines() == [
        f'FATAL shutdown did not finish within {TIMEOUT_S:g} s (stuck destroying the node); '
        f'exiting with status {STUCK_EXIT_STATUS} without finishing it'
    ], result.stderr
    assert 'shut down' not in result.stdout


def test_a_shutdown_stuck_in_c_with_the_gil_held_ends_with_its_stack(tmp_path):
    # The Python timer never gets the GIL; faulthandler's C thread ends the process and shows
    # where it hung.
    result = _run('gil', tmp_path)
    assert result.returncode == STUCK_EXIT_STATUS, result
    assert 'FATAL' not in result.stderr
    assert result.stderr.startswith('Timeout ('), result.stderr
    assert 'in destroy_node' in result.stderr, result.stderr
    assert 'shut down' not in result.stdout


def test_a_shutdown_that_finishes_disarms_the_watchdog(tmp_path):
    result = _run('done', tmp_path)
    assert result.returncode == 0, result
    assert result.stdout == 'shut down\n' and result.stderr == '', result
