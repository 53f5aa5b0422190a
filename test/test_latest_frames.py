import threading

from lma_perception.runtime.latest_frames import LatestFrames


def test_latest_frames_replaces_stale_frames_and_serves_round_robin():
    frames = LatestFrames(3)
    assert frames.put(0, 'a0') is False
    assert frames.put(0, 'a1') is True  # replaced an unprocessed frame: a drop
    frames.put(1, 'b0')
    frames.put(2, 'c0')
    assert frames.take(2) == [(0, 'a1'), (1, 'b0')]
    assert not frames.idle
    frames.task_done()
    frames.put(0, 'a2')
    assert frames.take(2) == [(2, 'c0'), (0, 'a2')]  # camera 2 first: it waited longest
    frames.task_done()
    assert frames.idle
    assert frames.take(2, timeout_s=0.01) == []


def test_latest_frames_close_wakes_a_waiting_worker():
    frames = LatestFrames(1)
    taken = []
    worker = threading.Thread(target=lambda: taken.append(frames.take(1)))
    worker.start()
    frames.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and taken == [[]]
