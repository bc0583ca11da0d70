"""`lf export` / `lf import` / `lf replay --file`: a history from one machine as a fixture on another.

Everything runs the real CLI in subprocesses; the held-workflow test runs a real `lf supervise`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from conftest import REPO, SupervisorProcess, history_records, lf, lf_json, wait_for, workflow_status, write_flow
from conftest import alive as _alive

GOLDEN = REPO / "tests" / "golden" / "histories"


def _history(home: Path, workflow_id: str) -> bytes:
    return (home / "var" / "workflows" / workflow_id / "history.jsonl").read_bytes()


def _other_home(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(REPO / "flows", target / "flows")
    return target


def _workflows(home: Path) -> list[str]:
    root = home / "var" / "workflows"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def _bundle_of(lines_by_id: dict[str, list[bytes]], root: str) -> bytes:
    header = {"localflow_bundle": 1, "exported_at": "2026-11-25T21:00:00.000Z", "root": root,
              "workflows": list(lines_by_id)}
    out = [json.dumps(header).encode() + b"\n"]
    for workflow_id, lines in lines_by_id.items():
        out.append(json.dumps({"workflow": workflow_id, "lines": len(lines)}).encode() + b"\n")
        out.extend(lines)
    return b"".join(out)


@pytest.fixture
def parent_bundle(home, tmp_path) -> Path:
    """A completed ParentFlow (p1) and its child (p1.greet), exported to a file."""
    assert lf(home, "run", "ParentFlow", "--id", "p1").returncode == 0
    target = tmp_path / "bundle.jsonl"
    done = lf(home, "export", "p1", "--to", str(target))
    assert done.returncode == 0, done.stderr
    return target


def test_round_trip_is_byte_exact_and_brings_the_children(home, tmp_path, parent_bundle):
    to = _other_home(tmp_path, "b")
    original = {i: _history(home, i) for i in ("p1", "p1.greet")}
    lines = parent_bundle.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[0])["workflows"] == ["p1", "p1.greet"]  # the root first, then its children

    done = lf(to, "import", str(parent_bundle))

    assert done.returncode == 0, done.stderr
    assert "imported p1.greet" in done.stdout and "lf resume" in done.stderr
    for workflow_id, data in original.items():
        imported = _history(to, workflow_id)
        assert imported.startswith(data)  # every original line, byte for byte
        (extra,) = imported[len(data):].splitlines()
        note = json.loads(extra)
        assert note["type"] == "WorkflowImported" and note["end"] is True
        assert note["bundle"] == {"file": "bundle.jsonl", "exported_at": json.loads(lines[0])["exported_at"],
                                  "root": "p1"}
    child = lf_json(to, "inspect", "p1.greet")
    assert child["parent"] == {"workflow_id": "p1", "step": "greet"} and child["held"] is True

    again = lf(to, "export", "p1")  # to stdout: the original lines again, each followed by its import note
    assert again.returncode == 0
    sections = again.stdout.encode().splitlines(keepends=True)
    assert b"".join(sections[2:2 + len(original["p1"].splitlines())]) == original["p1"]
    assert lf(to, "replay", "p1", "p1.greet").returncode == 0  # an imported history still replays


def test_an_id_already_taken_is_refused_and_nothing_changes(home, tmp_path, parent_bundle):
    to = _other_home(tmp_path, "b")
    assert lf(to, "run", "ChildGreeting", "--id", "p1.greet").returncode == 0  # the child's id is taken
    before = _history(to, "p1.greet")

    done = lf(to, "import", str(parent_bundle))

    assert done.returncode == 6  # refused: the id exists
    assert done.stderr.startswith("error: cannot import bundle.jsonl: workflow p1.greet already exists")
    assert "Traceback" not in done.stderr
    assert _workflows(to) == ["p1.greet"] and _history(to, "p1.greet") == before  # not even the parent


def _damaged(data: bytes, how: str) -> tuple[bytes, int]:
    """A broken copy of a bundle and the bundle line the error must name."""
    lines = data.splitlines(keepends=True)
    if how == "bad crc":
        assert b'"ts":"20' in lines[4]
        lines[4] = lines[4].replace(b'"ts":"20', b'"ts":"19', 1)  # valid JSON, one changed byte
        return b"".join(lines), 5
    if how == "truncated mid-line":
        return data[:-20], len(lines)
    if how == "truncated at a line":
        return b"".join(lines[:-1]), len(lines)
    if how == "not JSON":
        lines[3] = b"hello, world\n"
        return b"".join(lines), 4
    if how == "deep JSON line":
        lines[3] = b"[" * 10_000 + b"]" * 10_000 + b"\n"
        return b"".join(lines), 4
    if how == "deep JSON header":
        return b"[" * 10_000 + b"]" * 10_000 + b"\n" + b"".join(lines[1:]), 1
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["bad crc", "truncated mid-line", "truncated at a line", "not JSON",
                                 "deep JSON line", "deep JSON header"])
def test_a_damaged_bundle_names_its_line_and_imports_nothing(home, tmp_path, parent_bundle, how):
    to = _other_home(tmp_path, "b")
    data, line = _damaged(parent_bundle.read_bytes(), how)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(data)

    done = lf(to, "import", str(broken))
    replayed = lf(to, "replay", "--file", str(broken))

    for result in (done, replayed):
        assert result.returncode == 3, result.stderr
        assert result.stderr.startswith(f"error: {broken}:{line}: "), result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert _workflows(to) == []


def test_replay_file_checks_every_workflow_of_a_bundle_without_importing(home, tmp_path, parent_bundle):
    ok = lf(home, "replay", "--file", str(parent_bundle))
    report = lf_json(home, "replay", "--file", str(parent_bundle))
    edited = tmp_path / "ChildGreeting.flow"
    edited.write_text((REPO / "flows/examples/ChildGreeting.flow").read_text().replace("hello {name}", "hi {name}"))
    against = lf(home, "replay", "--file", str(parent_bundle), "--flow", str(edited))

    assert ok.returncode == 0 and ok.stdout.splitlines() == ["ok    p1  (4 events, completed)",
                                                             "ok    p1.greet  (5 events, completed)"]
    assert [r["id"] for r in report] == ["p1", "p1.greet"]
    verdicts = [line.split()[:2] for line in against.stdout.splitlines() if line.startswith(("ok ", "FAIL "))]
    assert against.returncode == 4 and verdicts == [["FAIL", "p1.greet"]]  # --flow: only the workflows of that flow


def test_replay_file_finds_a_nondeterministic_golden_history(tmp_path):
    lines = (GOLDEN / "purchaseflow-steps-swapped.nondeterministic.jsonl").read_bytes().splitlines(keepends=True)
    workflow_id = json.loads(lines[0])["workflow_id"]
    bundle = tmp_path / "golden.jsonl"
    bundle.write_bytes(_bundle_of({workflow_id: lines}, workflow_id))
    (tmp_path / "home").mkdir()

    done = lf(tmp_path / "home", "replay", "--file", str(bundle))
    (result,) = lf_json_code(tmp_path / "home", 4, "replay", "--file", str(bundle))

    assert done.returncode == 4 and done.stdout.startswith(f"FAIL  {workflow_id}  ")
    assert result["result"] == "nondeterministic" and result["seq"] == 2
    assert not (tmp_path / "home" / "var").exists()  # nothing imported, nothing written


def lf_json_code(home: Path, code: int, *args: str):
    done = lf(home, *args, "--json")
    assert done.returncode == code, done.stderr
    return json.loads(done.stdout)


# --- held means inert ------------------------------------------------------------------------

SLOW_ONCE = """import os, pathlib, time
pathlib.Path(f"ran-{os.environ['LF_ATTEMPT']}").write_text(str(os.getpid()))
time.sleep(120 if os.environ["LF_ATTEMPT"] == "1" else 0)
print('"done"')
"""

HELD_FLOW = """flow HeldDemo
  parallel:
    branch:
      step work:
        run ["python3", "flows/activities/slow_once.py"]
        timeout 10m
    branch:
      sleep 3s
  return work.result
"""


def test_an_imported_workflow_is_inert_under_a_real_supervisor_until_released(tmp_path):
    origin, here = tmp_path / "a", tmp_path / "b"
    for target in (origin, here):
        write_flow(target, "HeldDemo", HELD_FLOW)
        (target / "flows" / "activities").mkdir(parents=True, exist_ok=True)
        (target / "flows" / "activities" / "slow_once.py").write_text(SLOW_ONCE)
    # On the "other machine": mid-activity (a live process, its pid recorded) and mid-sleep.
    first = SupervisorProcess(origin)
    pid = None
    try:
        assert lf(origin, "start", "HeldDemo", "--id", "h1").returncode == 0
        types = lambda: [r["type"] for r in history_records(origin, "h1")]  # noqa: E731
        wait_for(lambda: "ActivityStarted" in types() and "TimerStarted" in types(), what="mid-activity, mid-sleep")
        first.stop(signal.SIGKILL)  # the activity's process lives on, as on a machine that crashed
        (started,) = [r for r in history_records(origin, "h1") if r["type"] == "ActivityStarted"]
        pid = started["pid"]
        bundle = tmp_path / "h1.jsonl"
        assert lf(origin, "export", "h1", "--to", str(bundle)).returncode == 0
        assert lf(here, "import", str(bundle)).returncode == 0
        imported = _history(here, "h1")

        second = SupervisorProcess(here)
        try:
            time.sleep(4)  # past the sleep's end: a live workflow would fire its timer and kill the orphan
            assert _history(here, "h1") == imported
            assert _alive(pid), "the supervisor killed a process recorded by another machine"
            timers = here / "var" / "timers"
            assert not timers.exists() or not any(timers.iterdir())  # no timer marker
            assert not (here / "ran-1").exists() and not (here / "ran-2").exists()
            assert not (here / "var" / "workflows" / "h1" / "logs").exists()  # no process was started
            assert "h1: imported and held" in second.output()
            assert lf_json(here, "inspect", "h1")["status"] == "held"

            # What `lf resume h1` will do: release it. The supervisor then carries it on.
            from localflow.core import events as ev
            from localflow.engine import Engine

            Engine(here).transact("h1", world=lambda s: [ev.WorkflowResumed(from_seq=None, reason="released")])
            wait_for(lambda: workflow_status(here, "h1") == "completed", timeout=60,
                     what="the released workflow to complete")
            assert (here / "ran-2").exists()
            assert _history(here, "h1").startswith(imported)
            assert "released" in second.output()
        finally:
            second.stop()
    finally:
        if first.process.poll() is None:
            first.stop(signal.SIGKILL)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
