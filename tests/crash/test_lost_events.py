"""Lost filesystem events: the supervisor notices and catches up, with each timer fired once and each
drop-folder request started once.

Events are hints (README, "Filesystem events are hints"); these tests take them away:
- a real burst: the supervisor is stopped (SIGSTOP) while more events than the kernel's inotify
  queue holds (/proc/sys/fs/inotify/max_queued_events) pile up, then the work that matters
  (requests dropped, signals, new workflows, timers falling due) whose events the kernel drops;
- the watchdog observer thread dies (as a watchdog bug or an I/O error would kill it), which
  nothing reports by itself;
- and it cannot be started again (out of inotify instances), so only the rescan is left.
The rescan period is long in the first two, so catching up in time proves it was noticed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import history_records, lf, wait_for, write_flow

from localflow.engine import Engine
from localflow.supervisor import service
from localflow.supervisor.service import Supervisor

NAP = """flow Nap
  input n = 0
  sleep 1s
  step s:
    run ["sh", "-c", "echo $1", "sh", f"{n}"]
  return s.result
"""
GATE = """flow Gate
  step go:
    wait signal go timeout 10m
  step s:
    run ["echo", "through"]
  return go.result
"""
QUEUE = Path("/proc/sys/fs/inotify/max_queued_events")


def ended(home: Path, workflow_id: str) -> bool:
    try:
        return history_records(home, workflow_id)[-1]["type"] == "WorkflowCompleted"
    except (FileNotFoundError, IndexError):
        return False


def has_event(home: Path, workflow_id: str, kind: str) -> bool:
    return any(r["type"] == kind for r in history_records(home, workflow_id))


def drop_request(home: Path, workflow_id: str, n: int) -> None:
    tmp = home / "flows" / f"{workflow_id}.tmp"
    tmp.write_text(json.dumps({"flow": "Nap", "input": {"n": n}, "id": workflow_id}))
    os.rename(tmp, home / "flows" / f"{workflow_id}.start.json")


def flood(directory: Path, events: int) -> None:
    """``events`` inotify events in ``directory``: a hidden file renamed back and forth (a move is two)."""
    a, b = directory / ".flood-a", directory / ".flood-b"
    a.touch()
    for _ in range(events // 2 + 1):
        os.rename(a, b)
        a, b = b, a
    a.unlink()


def assert_each_timer_fired_once_and_each_request_started_once(home: Path, ids: list[str], requests: list[str]):
    for workflow_id in ids:
        records = history_records(home, workflow_id)
        fired = Counter(r["timer"] for r in records if r["type"] == "TimerFired")
        assert all(count == 1 for count in fired.values()), (workflow_id, fired)
        if records[0]["flow_name"] == "Nap":
            assert set(fired) == {r["timer"] for r in records if r["type"] == "TimerStarted"}, workflow_id
    done = sorted(os.listdir(home / "var/requests/done"))
    assert [n for n in done if any(n.endswith(f"-{r}.start.json") for r in requests)] == done
    assert len(done) == len(requests)
    assert not (home / "var/requests/rejected").exists() or os.listdir(home / "var/requests/rejected") == []
    assert [p.name for p in (home / "flows").iterdir() if p.name.endswith(".start.json")] == []


def test_an_inotify_queue_overflow_is_noticed_and_a_rescan_catches_up_at_once(home, supervisor):
    capacity = int(QUEUE.read_text())
    if capacity > 1_000_000:  # not something a test can exceed in seconds; the other tests still run
        pytest.skip(f"max_queued_events is {capacity}")
    write_flow(home, "Nap", NAP)
    write_flow(home, "Gate", GATE)
    sup = supervisor("--rescan", "120")  # the periodic rescan would come far too late
    before = [f"n{i}" for i in range(4)]
    gates = [f"g{i}" for i in range(4)]
    for workflow_id in before:
        assert lf(home, "start", "Nap", "--id", workflow_id, "-i", "n=1").returncode == 0
    for workflow_id in gates:
        assert lf(home, "start", "Gate", "--id", workflow_id).returncode == 0
    wait_for(lambda: all(has_event(home, i, "TimerStarted") for i in before + gates), what="sleeps and waits")

    # Given a supervisor that reads no event while the kernel's queue overflows,
    sup.process.send_signal(signal.SIGSTOP)
    try:
        flood(home / "flows", capacity + 2000)
        # when the work that matters comes only after the queue is full (its events are dropped)
        requests = [f"r{i}" for i in range(6)]
        for number, workflow_id in enumerate(requests):
            drop_request(home, workflow_id, number)
        for workflow_id in gates:
            assert lf(home, "signal", workflow_id, "go", "--data", json.dumps(workflow_id)).returncode == 0
        after = [f"a{i}" for i in range(4)]
        for workflow_id in after:
            assert lf(home, "start", "Nap", "--id", workflow_id).returncode == 0
        time.sleep(1.2)  # the first sleeps are now overdue
    finally:
        resumed = time.monotonic()
        sup.process.send_signal(signal.SIGCONT)

    # then the supervisor says so, rescans at once, and everything ends, each thing once.
    ids = before + gates + requests + after
    wait_for(lambda: all(ended(home, i) for i in ids), timeout=60, what="every workflow to end")
    caught_up = time.monotonic() - resumed
    print(f"\nlost events: queue of {capacity} overflowed; {len(ids)} workflows caught up {caught_up:.1f}s "
          "after the supervisor resumed (rescan period 120s)")
    assert caught_up < 60
    assert re.search(r"watch: .*overflow.*; rescanning", sup.output(), re.IGNORECASE), sup.output()
    assert_each_timer_fired_once_and_each_request_started_once(home, ids, requests)
    assert [history_records(home, g)[-1]["result"] for g in gates] == gates
    assert sup.stop() == 0


class InProcess:
    """A Supervisor running on a thread of the test, so its observer can be reached (and killed)."""

    def __init__(self, home: Path, rescan_s: float) -> None:
        self.lines: list[str] = []
        self.supervisor = Supervisor(Engine(home), self.lines.append, rescan_s=rescan_s, grace_s=1)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.supervisor.run, args=(self.stop_event,), daemon=True)
        self.thread.start()
        wait_for(lambda: any("supervising" in line for line in self.lines), what="the supervisor to start")

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def kill_observer_thread(self, home: Path) -> None:
        """Make the observer thread die the way an exception in it would: no word, no more hints."""
        observer = self.supervisor._observer

        def broken(queue):
            raise SystemExit("the observer thread dies")

        observer.dispatch_events = broken  # its loop calls this after the event it is waiting for
        (home / "flows" / ".poke").write_text("x")
        wait_for(lambda: not observer.is_alive(), timeout=10, what="the observer thread to die")

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


DELIBERATE_DEATH = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@DELIBERATE_DEATH
def test_a_dead_observer_thread_is_noticed_restarted_and_what_it_missed_caught_up(home):
    write_flow(home, "Nap", NAP)
    write_flow(home, "Gate", GATE)
    assert lf(home, "start", "Gate", "--id", "g").returncode == 0
    running = InProcess(home, rescan_s=120)
    try:
        wait_for(lambda: has_event(home, "g", "TimerStarted"), what="g waiting")
        first = running.supervisor._observer
        running.kill_observer_thread(home)
        drop_request(home, "missed", 1)  # while nothing watches: the restart's rescan must find it
        wait_for(lambda: running.said("watch: the filesystem observer had stopped; restarted it"), timeout=10,
                 what="the supervisor to notice")
        assert running.supervisor._observer is not first and running.supervisor._observer.is_alive()
        wait_for(lambda: ended(home, "missed"), timeout=20, what="the request dropped while it was dead")

        # The new observer delivers events again: with the next rescan two minutes away, these are events.
        drop_request(home, "later", 2)
        assert lf(home, "signal", "g", "go", "--data", '"ok"').returncode == 0
        assert lf(home, "start", "Nap", "--id", "fresh").returncode == 0
        wait_for(lambda: all(ended(home, i) for i in ("later", "g", "fresh")), timeout=20, what="events to work")
    finally:
        running.stop()
    assert_each_timer_fired_once_and_each_request_started_once(home, ["g", "missed", "later", "fresh"],
                                                               ["missed", "later"])


@DELIBERATE_DEATH
def test_an_observer_that_cannot_be_restarted_leaves_the_rescan_polling_until_it_can(home, monkeypatch):
    write_flow(home, "Nap", NAP)
    running = InProcess(home, rescan_s=1)
    refuse = threading.Event()
    real_start = service.start_observer

    def start_observer(paths, hints):
        if refuse.is_set():
            raise OSError(24, "inotify instance limit reached")
        return real_start(paths, hints)

    monkeypatch.setattr(service, "start_observer", start_observer)
    try:
        refuse.set()
        running.kill_observer_thread(home)
        wait_for(lambda: running.said("cannot be restarted; the rescan every 1s catches up meanwhile"), timeout=10,
                 what="the supervisor to fall back to the rescan")
        drop_request(home, "polled", 1)
        assert lf(home, "start", "Nap", "--id", "started").returncode == 0
        wait_for(lambda: ended(home, "polled") and ended(home, "started"), timeout=30, what="the rescan to run them")
        refuse.clear()
        wait_for(lambda: running.said("watch: the filesystem observer is running again"), timeout=10,
                 what="a new observer at the next rescan")
        assert running.supervisor._observer.is_alive()
    finally:
        running.stop()
    assert_each_timer_fired_once_and_each_request_started_once(home, ["polled", "started"], ["polled"])


def test_an_emitter_thread_that_stopped_is_noticed_too(home):
    """One emitter thread per watched folder feeds the observer; one that ended (an I/O error on its
    inotify descriptor) leaves that folder unwatched while the observer itself looks alive."""
    write_flow(home, "Nap", NAP)
    running = InProcess(home, rescan_s=120)
    try:
        observer = running.supervisor._observer
        emitter = next(e for e in list(observer.emitters) if e.watch.path == str(home / "flows"))
        emitter.stop()
        emitter.join(timeout=10)
        wait_for(lambda: running.said("watch: the filesystem observer had stopped; restarted it"), timeout=10,
                 what="the supervisor to notice")
        drop_request(home, "after", 1)
        wait_for(lambda: ended(home, "after"), timeout=20, what="the request, by an event")
    finally:
        running.stop()
