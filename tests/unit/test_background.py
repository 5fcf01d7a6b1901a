"""``Latest``: the one "latest request wins" runner the tuner, the session and the assistant use."""

import threading
import time

import pytest

from workbench.background import Latest


def _gate():
    entered, release = threading.Event(), threading.Event()

    def slow(x):
        entered.set()
        assert release.wait(10)
        return x

    return slow, entered, release


def test_a_request_overtaken_while_waiting_never_runs_and_the_newest_runs_last():
    runner = Latest("t", superseded="skipped")
    slow, entered, release = _gate()
    ran = []
    try:
        first = runner.submit(slow, 1)
        assert entered.wait(10)  # the worker is inside the first job
        middle = [runner.submit(lambda i=i: ran.append(i) or i) for i in range(5)]
        newest = runner.submit(lambda: ran.append("newest") or "newest")
        assert runner.busy and not first.done()
        assert all(f.result(1) == "skipped" for f in middle)  # resolved at once, never run
    finally:
        release.set()
    assert first.result(10) == 1
    assert newest.result(10) == "newest"
    assert runner.wait(10) and not runner.busy
    assert ran == ["newest"]
    runner.close()


def test_jobs_never_overlap_and_each_runs_on_the_one_worker_thread():
    runner = Latest("t", initializer=lambda: threading.current_thread().__setattr__("tagged", 1))
    active, peak, threads = [0], [0], set()
    lock = threading.Lock()

    def job():
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        me = threading.current_thread()
        threads.add((me.name, getattr(me, "tagged", 0)))
        time.sleep(0.002)
        with lock:
            active[0] -= 1

    for _ in range(40):
        runner.submit(job)
        time.sleep(0.001)
    assert runner.wait(10)
    assert peak[0] == 1
    assert len(threads) == 1 and next(iter(threads))[1] == 1  # the initializer ran on it
    runner.close(wait=True)


def test_an_exception_is_held_by_the_future_and_the_runner_keeps_working():
    runner = Latest("t")

    def boom():
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        runner.submit(boom).result(10)
    assert runner.submit(lambda: 7).result(10) == 7
    runner.close()


def test_close_supersedes_the_waiting_request_and_refuses_new_ones():
    runner = Latest("t", superseded=False)
    slow, entered, release = _gate()
    running = runner.submit(slow, "done")
    assert entered.wait(10)
    waiting = runner.submit(lambda: "never")
    runner.close()
    assert waiting.result(1) is False
    release.set()
    assert running.result(10) == "done"
    with pytest.raises(RuntimeError):
        runner.submit(lambda: 1)
