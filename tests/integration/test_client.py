"""localflow.client, the Python API `lf` calls: id resolution, listing, results, delete and prune,
on real files (and, where it matters, a real supervisor process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import alive, history_records, wait_for, write_flow
from localflow import client as client_module
from localflow.client import Client, find_home, parse_age, parse_when
from localflow.core.timefmt import from_iso
from localflow.errors import (AmbiguousWorkflowId, ExitCode, InputError, InvalidWorkflowId, UnsafePath, WaitTimedOut,
                              WorkflowFailed, WorkflowNotFound, WorkflowStillRunning)
from localflow.supervisor.executor import Executor

FLOWS = {
    "Quick": 'flow Quick\n  input n = 1\n  return {"n": n}\n',
    "Waits": 'flow Waits\n  step ok:\n    wait signal go\n  step echo:\n    run ["echo", "{\\"said\\": 1}"]\n'
             '  return {"got": ok.result, "echo": echo.result}\n',
    "Slow": 'flow Slow\n  step work:\n    run ["sleep", "30"]\n  return 1\n',
    "Nap": 'flow Nap\n  sleep 1h\n  return 1\n',
    "Boom": 'flow Boom\n  fail "it broke"\n',
    "Parent": 'flow Parent\n  step kid:\n    flow Kid\n  return kid.result\n',
    "Kid": 'flow Kid\n  return "hi"\n',
    "Echo": 'flow Echo\n  input n = 1\n  step e:\n    run ["python3", "-c", "import sys; print(sys.stdin.read())"]\n'
            '    stdin {"n": n}\n  return e.result\n',
}
DAY_MS = 86_400_000


@pytest.fixture
def home(tmp_path) -> Path:
    target = tmp_path / "home"
    for name, text in FLOWS.items():
        write_flow(target, name, text)
    return target


@pytest.fixture
def client(home) -> Client:
    return Client(home)


def drive(client: Client, *ids: str) -> None:
    """Run workflows (and the children they start) in this process until nothing more happens now."""
    executor = Executor(client.engine)
    try:
        for _ in range(6):
            for workflow_id in list(ids) + [w for w in client.engine.workflow_ids() if w not in ids]:
                executor.reconcile(workflow_id)
    finally:
        executor.stop()


def start_at(client: Client, ms: int, flow: str, workflow_id: str | None = None, finish: bool = True) -> str:
    """Start (and, with ``finish``, run) a workflow as if the clock said ``ms``."""
    saved = client.engine.clock
    client.engine.clock = lambda: ms
    try:
        workflow_id = client.start(flow, id=workflow_id)
        if finish:
            drive(client, workflow_id)
    finally:
        client.engine.clock = saved
    return workflow_id


class Supervisor:
    """A real supervisor process (the Supervisor class, not the CLI around it)."""

    CODE = ("import sys, signal, threading\n"
            "from localflow.engine import Engine\n"
            "from localflow.supervisor.service import Supervisor\n"
            "stop = threading.Event()\n"
            "signal.signal(signal.SIGTERM, lambda *a: stop.set())\n"
            "Supervisor(Engine(sys.argv[1]), lambda m: print(m, flush=True), rescan_s=1.0, grace_s=1.0).run(stop)\n")

    def __init__(self, home: Path) -> None:
        self.log = home.parent / "supervisor.log"
        with open(self.log, "w") as out:
            self.process = subprocess.Popen([sys.executable, "-c", self.CODE, str(home)], stdout=out,
                                            stderr=subprocess.STDOUT, cwd=home)
        wait_for(lambda: "supervising" in self.output() or self.process.poll() is not None, what="supervisor")

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


@pytest.fixture
def supervisor(home):
    started: list[Supervisor] = []

    def start() -> Supervisor:
        started.append(Supervisor(home))
        return started[-1]

    yield start
    for sup in started:
        if sup.process.poll() is None:
            sup.process.kill()
            sup.process.wait()


# --- resolution ------------------------------------------------------------------------


def test_an_exact_id_wins_over_the_children_it_prefixes(client):
    # Given a parent whose id is a prefix of its child's id
    parent = start_at(client, 1_700_000_000_000, "Parent", "P-20261129-214603-4467ab")
    child = parent + ".kid"
    assert client.get(child).parent == parent

    # Then the exact id names the parent, a longer prefix the child, a shorter one the family's root
    assert client.resolve(parent) == parent
    assert client.resolve(parent + ".k") == child
    assert client.resolve("P-2026") == parent


def test_a_unique_prefix_and_a_random_tail_resolve(client):
    generated = client.start("Quick")
    tail = generated.rsplit("-", 1)[1]

    assert client.resolve("Qui") == generated
    assert client.resolve(tail[:4]) == generated
    assert client.resolve(tail) == generated
    with pytest.raises(WorkflowNotFound):
        client.resolve(tail[:3])  # a tail counts from 4 characters on


def test_at_last_is_the_newest_started_workflow_not_a_child(client):
    start_at(client, 1_000, "Quick", "older")
    newest = start_at(client, 2_000, "Parent", "newest")  # its child starts later still

    assert client.resolve("@last") == newest


def test_an_ambiguous_prefix_lists_candidates_newest_first_with_exit_code_2(client):
    for n in range(12):
        start_at(client, 1_000 + n, "Quick", f"Order-{n:02d}", finish=False)

    with pytest.raises(AmbiguousWorkflowId) as caught:
        client.resolve("Order-")

    assert caught.value.exit_code == ExitCode.USAGE == 2
    assert caught.value.candidates[:2] == ["Order-11", "Order-10"]
    assert "Order-11, Order-10" in str(caught.value) and "Order-01" not in str(caught.value)
    assert "and 2 more" in str(caught.value)


def test_an_unknown_id_is_not_found_with_exit_code_5_and_bad_text_is_invalid(client):
    client.start("Quick", id="known")
    with pytest.raises(WorkflowNotFound) as caught:
        client.resolve("nothing-like-it")
    assert caught.value.exit_code == 5
    for bad in ("../known", "a/b", "known\n", "", "..", "@first"):
        with pytest.raises(InvalidWorkflowId):
            client.resolve(bad)


def test_the_home_is_found_by_walking_up(home, tmp_path):
    assert find_home(home / "flows") == home
    (home / "flows" / "deep").mkdir()
    assert find_home(home / "flows" / "deep") == home
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    assert find_home(lonely) == lonely
    with pytest.raises(InputError):
        Client(tmp_path / "missing")


# --- listing and counting ------------------------------------------------------------------


def test_list_filters_totals_and_pages_newest_first(client):
    ids = [start_at(client, (n + 1) * DAY_MS, "Quick", f"q{n}") for n in range(5)]
    start_at(client, 6 * DAY_MS, "Boom", "b0")
    start_at(client, 7 * DAY_MS, "Waits", "w0")

    page = client.list(limit=2)
    assert [r["id"] for r in page.rows] == ["w0", "b0"] and page.total == 7 and page.problems == []
    assert [r["id"] for r in client.list(limit=2, offset=2).rows] == ["q4", "q3"]
    assert client.list(limit=None).total == len(client.list(limit=0).rows) == 7
    assert [r["id"] for r in client.list(status=["failed", "running"]).rows] == ["w0", "b0"]
    assert [r["id"] for r in client.list(flow="Quick", since=2 * DAY_MS, until=4 * DAY_MS).rows] == ["q2", "q1"]
    since = datetime.fromtimestamp(5 * DAY_MS / 1000, tz=timezone.utc)
    assert client.list(since=since).total == 3
    assert set(ids) == {r["id"] for r in client.list(status="completed").rows}
    with pytest.raises(InputError):
        client.list(status="done")


def test_list_by_parent_gives_its_children(client):
    start_at(client, DAY_MS, "Parent", "p1")
    start_at(client, DAY_MS, "Quick", "p1.kidlike")  # an id that looks like a child, and is none

    assert [r["id"] for r in client.list(parent="p1").rows] == ["p1.kid"]


def test_count_by_status_and_by_flow(client):
    for n in range(3):
        start_at(client, DAY_MS + n, "Quick", f"q{n}")
    start_at(client, DAY_MS, "Boom", "b")
    start_at(client, DAY_MS, "Waits", "w")

    assert client.count() == 5
    assert client.count(by="status") == {"completed": 3, "failed": 1, "running": 1}
    assert client.count(by="flow", status="completed") == {"Quick": 3}


# --- results ------------------------------------------------------------------------------


def test_result_of_completed_failed_and_running_workflows(client):
    done, failed, running = (start_at(client, DAY_MS, f, i) for f, i in (("Quick", "q"), ("Boom", "b"), ("Waits", "w")))

    assert client.result(done) == {"n": 1}
    with pytest.raises(WorkflowFailed) as caught:
        client.result(failed)
    assert caught.value.exit_code == 1 and caught.value.status == "failed"
    assert "it broke" in caught.value.error["message"]
    with pytest.raises(WorkflowStillRunning) as still:
        client.result(running)
    assert still.value.exit_code == 6
    info = client.get(running)
    assert info.waiting_for == ["go"] and info.status == "running" and info.ended is None
    assert info.to_json()["waiting_for"] == ["go"]


def test_waiting_for_a_result_times_out_without_a_tight_loop(client, monkeypatch):
    workflow_id = start_at(client, DAY_MS, "Waits", "w")
    reads = []
    real = client.engine.state_of
    monkeypatch.setattr(client.engine, "state_of", lambda wid: reads.append(wid) or real(wid))

    began = time.monotonic()
    with pytest.raises(WaitTimedOut) as caught:
        client.result(workflow_id, wait=True, timeout=1.2)

    assert 1.1 < time.monotonic() - began < 3
    assert isinstance(caught.value, TimeoutError) and caught.value.exit_code == 6
    assert len(reads) <= 4  # the first read, then one per poll second (and any file event)


def test_waiting_for_a_result_wakes_on_the_supervisors_writes(home, client, supervisor, monkeypatch):
    monkeypatch.setattr(client_module, "POLL_S", 30.0)  # so only a file event can wake it in time
    sup = supervisor()
    workflow_id = client.start("Waits")
    wait_for(lambda: client.get(workflow_id).waiting_for == ["go"], what="the wait step")
    threading.Timer(0.3, lambda: Client(home).signal(workflow_id, "go", {"yes": True})).start()

    began = time.monotonic()
    assert client.result(workflow_id, wait=True, timeout=20) == {"got": {"yes": True}, "echo": {"said": 1}}
    assert time.monotonic() - began < 10
    assert sup.stop() == 0


# --- delete --------------------------------------------------------------------------------


def test_delete_refuses_a_running_workflow_without_force(home, client):
    workflow_id = start_at(client, DAY_MS, "Waits", "w")

    with pytest.raises(WorkflowStillRunning) as caught:
        client.delete(workflow_id)

    assert caught.value.exit_code == 6 and "--force" in str(caught.value)
    assert (home / "var/workflows/w/history.jsonl").exists()


def test_delete_force_terminates_then_deletes_with_children_and_timer_markers(home, client):
    naps = start_at(client, DAY_MS, "Nap", "nap")
    assert [m.name for m in (home / "var/timers").iterdir()] != []  # its sleep has a marker
    parent = start_at(client, DAY_MS, "Parent", "p1")
    (home / "var/timers" / f"{2 * DAY_MS:013d}-p1.kid-7").write_text("")  # a stray marker of the child

    assert client.delete(naps, force=True) == ["nap"]
    assert client.delete(parent) == ["p1.kid", "p1"]

    assert sorted(os.listdir(home / "var/workflows")) == []
    assert list((home / "var/timers").iterdir()) == []
    with pytest.raises(WorkflowNotFound):
        client.get("p1")


def test_delete_of_a_child_whose_parent_runs_is_refused(home, client):
    write_flow(home, "Holder", 'flow Holder\n  step kid:\n    flow Waits\n  return 1\n')
    start_at(client, DAY_MS, "Holder", "h")

    with pytest.raises(WorkflowStillRunning) as caught:
        client.delete("h.kid", force=True)

    assert "delete or terminate h instead" in str(caught.value)
    assert client.get("h.kid").status == "running"


def test_delete_follows_no_symlink_planted_in_var(home, client, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    workflow_id = start_at(client, DAY_MS, "Quick", "q")
    os.symlink(outside, home / "var/workflows/q/logs")  # a link inside the workflow's folder
    start_at(client, DAY_MS, "Quick", "other")
    (home / "var/workflows/other").rename(outside / "other")
    os.symlink(outside / "other", home / "var/workflows/evil")  # a workflow folder that is a link

    assert client.delete(workflow_id) == ["q"]
    with pytest.raises(UnsafePath) as caught:
        client.delete("evil")

    assert caught.value.exit_code == 3
    assert (outside / "precious.txt").read_text() == "keep me"
    assert (outside / "other" / "history.jsonl").exists() and os.path.islink(home / "var/workflows/evil")


def test_force_delete_under_a_running_supervisor_kills_the_work_and_the_id_can_be_reused(home, client, supervisor):
    sup = supervisor()
    workflow_id = client.start("Slow", id="slow")
    started = wait_for(lambda: [r for r in history_records(home, "slow") if r["type"] == "ActivityStarted"],
                       what="the sleep started")

    assert client.delete(workflow_id, force=True) == ["slow"]

    assert not (home / "var/workflows/slow").exists()
    wait_for(lambda: not alive(started[0]["pid"]), timeout=10, what="the sleep killed")
    # the same supervisor runs a new workflow under the same id from its start
    client.start("Echo", {"n": 2}, id="slow")
    assert client.result("slow", wait=True, timeout=20) == {"n": 2}
    assert sup.process.poll() is None
    assert sup.stop() == 0
    assert "internal error" not in sup.output() and "Traceback" not in sup.output()


# --- prune ------------------------------------------------------------------------------


def test_prune_deletes_old_ended_workflows_children_with_parents_and_dry_run_changes_nothing(home, client):
    now = int(time.time() * 1000)
    old = now - 10 * DAY_MS
    start_at(client, old, "Quick", "old-done")
    start_at(client, old, "Parent", "old-parent")
    start_at(client, old, "Boom", "old-failed")
    start_at(client, old, "Waits", "old-running")
    start_at(client, now - DAY_MS, "Quick", "new-done")

    would = client.prune(older_than=timedelta(days=7), dry_run=True)

    assert sorted(would) == ["old-done", "old-parent", "old-parent.kid"]
    assert len(os.listdir(home / "var/workflows")) == 6
    assert sorted(client.prune(older_than=7 * 86_400.0)) == sorted(would)
    assert sorted(os.listdir(home / "var/workflows")) == ["new-done", "old-failed", "old-running"]
    assert client.prune(status=["failed", "cancelled"], older_than=parse_age("7d")) == ["old-failed"]
    with pytest.raises(InputError):
        client.prune(status="running", older_than=0)


# --- the parsers the CLI shares -------------------------------------------------------------


def test_ages_and_times_parse_or_say_what_is_wrong():
    assert parse_age("7d") == timedelta(days=7) and parse_age("2w") == timedelta(weeks=2)
    assert parse_age("1d12h") == timedelta(hours=36) and parse_age("45s") == timedelta(seconds=45)
    assert parse_when("2026-11-29") == from_iso("2026-11-29T00:00:00Z")
    assert parse_when("2026-11-29T22:46:03+01:00") == from_iso("2026-11-29T21:46:03Z")
    assert parse_when("2026-11-29T21:46:03Z") == parse_when("2026-11-29T21:46:03")
    assert parse_when("2h", now=10 * 3_600_000) == 8 * 3_600_000
    for bad in ("7 days", "soon", "", "12x", "2026-13-01"):
        with pytest.raises(InputError):
            parse_when(bad) if not bad.startswith("7") else parse_age(bad)
    with pytest.raises(InputError) as caught:
        parse_age("a week")
    assert "7d" in str(caught.value) and caught.value.exit_code == 2


def test_cancel_says_whether_it_was_already_asked(client):
    workflow_id = client.start("Slow", id="s")
    client.engine.transact(workflow_id)  # its step is scheduled (no supervisor: nothing runs it)

    assert client.cancel(workflow_id) is True
    assert client.cancel(workflow_id) is False
    assert client.get(workflow_id).status == "running"  # until its attempt is recorded stopped
