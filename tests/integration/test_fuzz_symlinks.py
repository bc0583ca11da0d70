"""Symlinks planted at every path LocalFlow opens under var/, then the commands that open them.

store/safe.py's rule (ARCHITECTURE rule 10): below var/ nothing is followed; a symlink is refused
(UnsafePath, exit 3, naming it) or, for a file LocalFlow replaces whole (a registry record, a timer
marker, a summary), replaced by a file of its own. So whatever is planted where, pointing at a
file or a folder outside the home, at nothing (dangling: following it would create the target), or
at another workflow's files inside the home:

- every command exits with a documented code and no traceback;
- nothing outside the home changes and no dangling target is created;
- the file or folder a planted link points to inside the home is unchanged;
- the executor (as a supervisor drives it) and the drop folder never write through one either.

(var/ itself may be a symlink on purpose: a user may keep state on another disk; it is not planted.)
The paths: var/workflows, a workflow's folder, its history.jsonl, lock, logs/, logs/<step>.<n>.out|err|in,
summary.json and its temp file, var/timers, var/requests and taken|done|rejected, var/registry and a
record in it, var/schedules and a schedule file, var/supervisor.lock and var/supervisor.json.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import SupervisorProcess, wait_for
from test_fuzz_entry_points import TRACEBACK, World, assert_documented, fuzz_settings

from localflow.engine import Engine
from localflow.errors import LocalFlowError
from localflow.supervisor.dropfolder import DropFolder
from localflow.supervisor.executor import Executor
from localflow.supervisor.loop import drive

JOB = """\
flow Job
  step s:
    run ["echo", "done"]
  step approval:
    wait signal go timeout 1h
  return approval.result
"""
QUICK = """\
flow Quick
  step s:
    run ["echo", "{}"]
  sleep 1s
  return s.result
"""

PLANTS = [
    "workflows", "workflows/w1", "workflows/new", "workflows/run-1", "workflows/w1/history.jsonl",
    "workflows/w1/lock", "workflows/w1/logs", "workflows/w1/logs/s.1.out", "workflows/w1/logs/s.1.err",
    "workflows/w1/logs/s.1.in", "workflows/w1/summary.json", "workflows/w1/summary.json.PID.tmp",  # PID: this process's (the same test ids in every xdist worker)
    "timers", "requests", "requests/taken", "requests/done", "requests/rejected", "registry", "registry/Job.json",
    "schedules", "schedules/nightly.json", "supervisor.lock", "supervisor.json",
]
TARGETS = ["outside file", "outside dir", "dangling", "inside file", "inside dir", "the real thing moved outside"]
COMMANDS = {
    "start": ("start", "Job", "--id", "new"),
    "signal": ("signal", "w1", "go", "--data", '{"ok": 1}'),
    "cancel": ("cancel", "w1"),
    "terminate": ("terminate", "w1"),
    "list": ("list",),
    "inspect": ("inspect", "w1"),
    "history": ("history", "w1"),
    "logs": ("logs", "w1"),
    "replay": ("replay", "w1"),
    "run": ("run", "Quick", "--skip-time", "--id", "run-1"),
    "schedule": ("schedule", "add", "nightly", "Job", "--cron", "@daily"),
    "schedules": ("schedule", "list"),
    "drive": None,  # the executor carries w1's first step out, as a supervisor does (logs/)
    "drop": None,  # a request and a flow file taken by the drop folder (requests/, registry/)
}
COUNTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A home with a waiting workflow w1 (its first step not yet run) and a finished one, other."""
    root = tmp_path_factory.mktemp("fuzz-symlinks-template")
    w = World(root, {"Job": JOB, "Quick": QUICK})
    assert w.lf("start", "Job", "--id", "w1").code == 0
    assert w.lf("run", "Quick", "--skip-time", "--id", "other").code == 0
    past = time.time() - 60
    for flow in (w.home / "flows").iterdir():
        os.utime(flow, (past, past))
    return w.home


def _world(tmp_path_factory, template: Path) -> World:
    w = World(tmp_path_factory.mktemp("fuzz-symlinks"))
    shutil.rmtree(w.home)
    shutil.copytree(template, w.home, symlinks=True)
    return w


def _fingerprint(path: Path) -> object:
    """What a link target holds (a folder: every file below it but summaries, which a listing may refresh)."""
    if not os.path.lexists(path):
        return None
    if path.is_dir() and not path.is_symlink():
        return sorted((str(p.relative_to(path)), hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
                      for p in path.rglob("*") if "summary.json" not in p.name)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plant(world: World, where: str, target: str) -> Path:
    """Put a symlink at var/<where>, pointing at ``target``; returns what it points at."""
    var = world.home / "var"
    path = var / where
    path.parent.mkdir(parents=True, exist_ok=True)  # logs/ of w1 does not exist until its step runs
    outside = world.outside / "targets"
    outside.mkdir(exist_ok=True)
    if target == "outside file":
        aim = outside / "file"
        aim.write_bytes(b"outside file\n")
    elif target == "outside dir":
        aim = outside / "dir"
        aim.mkdir(exist_ok=True)
        (aim / "keep").write_text("outside dir\n")
    elif target == "dangling":
        aim = outside / "does-not-exist"
    elif target == "inside file":
        aim = var / "workflows" / "other" / "history.jsonl"
    elif target == "inside dir":
        aim = var / "workflows" / "other"
    else:  # the real thing (if any) moved outside, the link in its place: it looks right but is not ours
        aim = outside / "moved"
        if os.path.lexists(path):
            shutil.move(str(path), str(aim))
        else:
            aim.mkdir() if "." not in path.name and not path.name.endswith("lock") else aim.write_bytes(b"")
    if os.path.lexists(path):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    os.symlink(aim, path)
    return aim


def _drive_w1(world: World) -> None:
    """What a supervisor does for w1: carry its decisions out until its first step has ended (or 10s)."""
    engine = Engine(world.home)
    engine.verify = True
    executor = Executor(engine)
    deadline = time.monotonic() + 10

    def done() -> bool:
        if time.monotonic() > deadline:
            return True
        try:
            state = engine.state_of("w1")
        except LocalFlowError:  # a refused history: the executor has nothing to do
            return not executor.busy
        step = state.steps.get("s")
        return (state.terminal or (step is not None and step.status in ("completed", "failed"))) and not executor.busy

    def reconcile(workflow_id: str) -> None:
        try:
            executor.reconcile(workflow_id)
        except LocalFlowError:  # the supervisor logs it and carries on (service.py, _reconcile); others: a bug
            pass

    try:
        executor.mark_dirty("w1")
        drive(executor, reconcile, until=done, period_s=0.05)
    finally:
        executor.stop()


def _drop(world: World) -> list[str]:
    """A request and a new flow file, taken by an in-process drop folder as a supervisor's rescan does."""
    flows = world.home / "flows"
    (flows / "r.start.json").write_text('{"flow": "Job", "id": "from-request"}')
    (flows / "Extra.flow").write_text("flow Extra\n  sleep 1s\n")
    past = time.time() - 60
    for name in ("r.start.json", "Extra.flow"):
        os.utime(flows / name, (past, past))
    logs: list[str] = []
    folder = DropFolder(Engine(world.home), logs.append, lambda _: None)
    folder.recover()
    for path in sorted(flows.iterdir()):
        try:
            folder.handle(path)
        except LocalFlowError as exc:  # the supervisor logs it and carries on (service.py, _drop)
            logs.append(f"drop folder: {path.name}: {exc}")
    return logs


@pytest.mark.parametrize("where", PLANTS)
@fuzz_settings(6)
@given(target=st.sampled_from(TARGETS),
       commands=st.lists(st.sampled_from(sorted(COMMANDS)), min_size=1, max_size=4, unique=True))
def test_a_planted_symlink_is_never_followed_for_writing(tmp_path_factory, template, where, target, commands):
    where = where.replace("PID", str(os.getpid()))
    world = _world(tmp_path_factory, template)
    try:
        aim = _plant(world, where, target)
        COUNTS[f"{where} -> {target}"] = COUNTS.get(f"{where} -> {target}", 0) + 1
        world.sentinel = world.outside_tree()
        before = _fingerprint(aim)
        for name in commands:
            if name == "drive":
                _drive_w1(world)
            elif name == "drop":
                logs = _drop(world)
                assert not any(TRACEBACK in line for line in logs), logs
            else:
                outcome = world.lf(*COMMANDS[name])
                assert_documented(outcome)
            world.assert_outside_untouched((where, target, name))
            assert _fingerprint(aim) == before, f"{name} wrote through the link at var/{where} to {aim}"
            if target == "dangling":
                assert not os.path.lexists(aim), f"{name} created the target of a dangling link at var/{where}"
    finally:
        shutil.rmtree(world.root, ignore_errors=True)


@pytest.mark.parametrize("target", ["outside dir", "dangling", "inside dir"])
def test_a_real_supervisor_with_links_planted_everywhere_writes_nothing_through_them(tmp_path_factory, template,
                                                                                      target):
    """logs/, requests/done, registry/ and supervisor.json linked at once; a real `lf supervise`
    runs w1's step, takes a request and a new flow, and keeps running."""
    world = _world(tmp_path_factory, template)
    try:
        aims = {where: _plant(world, where, target) for where in (
            "workflows/w1/logs", "requests/done", "registry", "supervisor.json")}
        world.sentinel = world.outside_tree()
        before = {where: _fingerprint(aim) for where, aim in aims.items()}
        (world.home / "flows" / "r.start.json").write_text('{"flow": "Quick", "id": "from-request"}')
        supervisor = SupervisorProcess(world.home)
        try:
            try:
                wait_for(lambda: "w1" in supervisor.output() and "r.start.json" in supervisor.output(), timeout=30,
                         what="the supervisor to act on w1 and the request")
            except AssertionError:
                raise AssertionError(supervisor.output()) from None
            time.sleep(0.5)
            assert supervisor.process.poll() is None, supervisor.output()
        finally:
            supervisor.stop()
        output = supervisor.output()
        assert TRACEBACK not in output and "internal error" not in output, output
        for where, aim in aims.items():
            assert _fingerprint(aim) == before[where], f"the supervisor wrote through var/{where}"
            if target == "dangling":
                assert not os.path.lexists(aim), f"the supervisor created the target of var/{where}"
        world.assert_outside_untouched(target)
    finally:
        shutil.rmtree(world.root, ignore_errors=True)


@pytest.mark.parametrize("where", ["timers", "workflows", "supervisor.lock"])
def test_a_supervisor_refuses_to_start_on_a_linked_var_folder_in_one_line(tmp_path_factory, template, where):
    world = _world(tmp_path_factory, template)
    try:
        _plant(world, where, "outside dir" if where != "supervisor.lock" else "outside file")
        world.sentinel = world.outside_tree()
        supervisor = SupervisorProcess(world.home)
        code = supervisor.stop()
        output = supervisor.output()
        assert code == 3 and TRACEBACK not in output and "symlink" in output and where in output, (code, output)
        world.assert_outside_untouched(where)
    finally:
        shutil.rmtree(world.root, ignore_errors=True)


def test_report_the_classes_tried():
    """Not a check: how many examples planted each link (pytest -s)."""
    for what, count in sorted(COUNTS.items()):
        print(f"  {count:5d}  {what}")
