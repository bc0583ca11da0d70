"""Every process of an attempt is found and killed, whatever became of its leader (issue 6).

Real processes, real signals, a real supervisor killed with kill -9.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import alive, history_records, lf, wait_for, workflow_status, write_flow

from localflow.engine import Engine
from localflow.runner.proctree import (
    TAG_VAR,
    attempt_tag,
    find_attempt_processes,
    kill_attempt,
    process_start_time,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def read_pid(path: Path) -> int:
    """The pid a process wrote to ``path`` (waits until it is there)."""
    text = wait_for(lambda: path.exists() and path.read_text().strip(), timeout=10, what=f"{path.name}")
    return int(text)


def cleanup(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def child_subreaper(on: bool) -> bool:
    """Make this process the reaper of orphaned descendants (Linux prctl), so a test can reap them."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, int(on), 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap(*pids: int) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:  # not our child
            pass


def spawn(argv: list[str], cwd: Path, tag: str | None = None) -> subprocess.Popen:
    """A process in its own session, with ``tag`` as its LF_ATTEMPT_TAG (or none at all)."""
    env = {k: v for k, v in os.environ.items() if k != TAG_VAR}
    if tag is not None:
        env[TAG_VAR] = tag
    return subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True)


# In the leader's session and tagged; in a session of its own (still tagged); in the session but with a
# scrubbed environment. Each writes its own pid ($$ of a shell that then execs sleep).
TREE = (
    "sh -c 'echo $$ > in_session.pid; exec sleep 300' & "
    "setsid sh -c 'echo $$ > own_session.pid; exec sleep 300' & "
    "env -i sh -c 'echo $$ > scrubbed.pid; exec sleep 300' & "
    "exit 0"
)


def test_kill_attempt_kills_every_process_of_an_attempt_whose_leader_exited(tmp_path):
    tag = attempt_tag(tmp_path, "wf-1", "work", 1)
    stranger = spawn(["sleep", "300"], tmp_path)  # no tag, another session
    neighbour = spawn(["sleep", "300"], tmp_path, attempt_tag(tmp_path, "wf-1", "work", 11))  # a tag that extends ours
    other_home = spawn(["sleep", "300"], tmp_path, attempt_tag(tmp_path / "elsewhere", "wf-1", "work", 1))
    pids: list[int] = []
    try:
        leader = spawn(["sh", "-c", TREE], tmp_path, tag)
        leader_start = process_start_time(leader.pid)  # unreaped until wait(): readable either way
        assert leader.wait(timeout=10) == 0
        pids = [read_pid(tmp_path / name) for name in ("in_session.pid", "own_session.pid", "scrubbed.pid")]
        assert all(alive(pid) for pid in pids), "the tree should outlive its leader"

        killed = kill_attempt(tag, leader.pid, leader_start)

        assert set(pids) <= set(killed)
        wait_for(lambda: not any(alive(pid) for pid in pids), timeout=5, what="the tree dead")
        assert find_attempt_processes(tag, leader.pid, leader_start) == []
        assert all(p.poll() is None for p in (stranger, neighbour, other_home)), "only the attempt's processes die"
    finally:
        cleanup(*pids, stranger.pid, neighbour.pid, other_home.pid)
        for proc in (stranger, neighbour, other_home):
            proc.wait()


def test_without_a_start_time_the_session_is_not_trusted(tmp_path):
    """A process that scrubbed its tag is matched by session only when the leader's start time is known."""
    leader = spawn(["sh", "-c", "env -i sh -c 'echo $$ > scrubbed.pid; exec sleep 300' & exit 0"], tmp_path, "t")
    scrubbed = None
    try:
        leader.wait(timeout=10)
        scrubbed = read_pid(tmp_path / "scrubbed.pid")
        assert find_attempt_processes("t", leader.pid, None) == []
        assert kill_attempt("t", leader.pid) == [] and alive(scrubbed)
    finally:
        if scrubbed is not None:
            cleanup(scrubbed)


TIMEOUT_FLOW = """flow Escaper
  step work:
    run ["sh", "-c", "setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' & sleep 30"]
    timeout 1s
"""


def test_a_timeout_kills_processes_that_left_the_session(home):
    write_flow(home, "Escaper", TIMEOUT_FLOW)
    escaped = None
    try:
        done = lf(home, "run", "Escaper", "--id", "t1")
        escaped = read_pid(home / "escaped.pid")
        assert done.returncode == 1, done.stdout
        failed = [r for r in history_records(home, "t1") if r["type"] == "ActivityFailed"]
        assert [f["error"]["kind"] for f in failed] == ["timeout"]
        assert not alive(escaped)
        assert find_attempt_processes(attempt_tag(home, "t1", "work", 1)) == []
    finally:
        if escaped is not None:
            cleanup(escaped)


LEAVER_FLOW = """flow Leaver
  step work:
    run ["sh", "-c", "sleep 300 & echo $! > bg.$LF_ATTEMPT.pid; sleep 2; echo ok"]
"""


def test_kill9_of_the_supervisor_then_the_leader_exits_the_background_child_is_killed(home, supervisor):
    """Issue 6: the leader is gone when the new supervisor looks, but its `sleep 300` is not.

    This test process becomes the reaper of orphans, so it can reap the exited leader as init would
    (where init does not reap, a zombie leader kept its group alive and hid the bug).
    """
    write_flow(home, "Leaver", LEAVER_FLOW)
    reaping = child_subreaper(True)
    sup = supervisor()
    background: list[int] = []
    try:
        assert lf(home, "start", "Leaver", "--id", "o1").returncode == 0
        started = wait_for(lambda: [r for r in history_records(home, "o1") if r["type"] == "ActivityStarted"],
                           what="activity started")
        leader = started[0]["pid"]
        background.append(read_pid(home / "bg.1.pid"))
        sup.stop(signal.SIGKILL)
        if reaping:
            assert os.waitpid(leader, 0)[0] == leader  # it was reparented to us: the leader is gone for good
        wait_for(lambda: not alive(leader), timeout=10, what="the leader to exit")
        assert alive(background[0]), "the background child should outlive its leader and supervisor"

        again = supervisor()
        wait_for(lambda: not alive(background[0]), timeout=10, what="the background child killed")
        wait_for(lambda: workflow_status(home, "o1") == "completed", what="o1 completed")
        background.append(read_pid(home / "bg.2.pid"))
        records = history_records(home, "o1")
        assert [r["error"]["kind"] for r in records if r["type"] == "ActivityFailed"] == ["interrupted"]
        assert [r["result"] for r in records if r["type"] == "ActivityCompleted"] == ["ok"]
        assert "work attempt 1 was orphaned; killed 1 process of it" in again.output()
        wait_for(lambda: not alive(background[1]), timeout=5, what="attempt 2's background child killed")
    finally:
        cleanup(*background)
        if reaping:
            reap(*background)
            child_subreaper(False)


PROBE_FLOW = """flow Probe
  step work:
    run ["sh", "-c", "cut -d' ' -f3 /proc/$(cat orphan.pid)/stat 2>/dev/null || echo gone"]
"""


def test_an_attempt_started_but_never_recorded_is_killed_before_it_starts_again(home, supervisor):
    """A crash between spawn and ActivityStarted: the history has no pid, the tag finds the orphan."""
    write_flow(home, "Probe", PROBE_FLOW)
    assert lf(home, "start", "Probe", "--id", "u1").returncode == 0  # no supervisor: nothing runs it yet
    Engine(home).transact("u1")  # schedules attempt 1 of work, as the crashed executor did
    assert [r["type"] for r in history_records(home, "u1")][-1] == "ActivityScheduled"
    orphan = spawn(["sleep", "300"], home, attempt_tag(home, "u1", "work", 1))
    bystander = spawn(["sleep", "300"], home, attempt_tag(home, "u1", "work", 2))
    try:
        (home / "orphan.pid").write_text(str(orphan.pid))
        sup = supervisor()
        wait_for(lambda: workflow_status(home, "u1") == "completed", what="u1 completed")
        records = history_records(home, "u1")
        # the probe ran after the orphan was killed: it found it a zombie (we have not reaped it) or gone
        assert [r["result"] for r in records if r["type"] == "ActivityCompleted"] in (["Z"], ["gone"])
        assert [r["attempt"] for r in records if r["type"] == "ActivityStarted"] == [1]
        assert not any(r["type"] == "ActivityFailed" for r in records)
        assert "work attempt 1 was started but its pid never recorded; killed 1 process of it" in sup.output()
        assert orphan.wait(timeout=5) == -signal.SIGKILL
        assert bystander.poll() is None
    finally:
        cleanup(orphan.pid, bystander.pid)
        orphan.wait()
        bystander.wait()
