"""EIO and ENOSPC where LocalFlow writes and fsyncs: a command says so and changes nothing; a supervisor
carries on.

Faults are injected with LF_FAULTS (localflow/faults.py) into real `lf` processes: every write,
fsync, rename and mkdir of `lf start`, the append of `lf signal` and `lf cancel`, and appends of a
running supervisor. A command that fails exits 3 with one line on stderr and no traceback, leaves
every history valid (checksums, contiguous seq) and exactly as it was, and leaves no half-made
workflow; then the same command without the fault succeeds. A supervisor keeps running and
retries, or exits with a message. One test fills a real (tiny tmpfs) disk, mounted in a user and
mount namespace so that no root is needed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from test_crash_points import WID, Life, Supervisor, make_home, outcome, run_lf

from localflow import faults
from localflow.store import history

MESSAGES = {"EIO": "Input/output error", "ENOSPC": "the disk is full; free some space and retry"}


def assert_one_clear_line(done: subprocess.CompletedProcess, errno_name: str) -> None:
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not "), done.stderr
    assert MESSAGES[errno_name] in lines[0] and "Traceback" not in done.stderr, done.stderr


def history_bytes(home: Path, workflow_id: str) -> bytes:
    return (home / "var" / "workflows" / workflow_id / "history.jsonl").read_bytes()


def valid(home: Path, workflow_id: str) -> list[dict]:
    recs = history.read(home / "var" / "workflows" / workflow_id / "history.jsonl").records  # checksums
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    return recs


# --- the hooks themselves ---------------------------------------------------------------------------


def test_unset_the_hooks_are_inert_and_a_bad_spec_is_refused(tmp_path):
    try:
        faults.configure(None)
        assert faults.ACTIVE is False
        faults.hit("write", "x")  # nothing happens, nothing is counted
        faults.configure("error:fsync:EIO:2,error:write:ENOSPC:2-3")
        faults.hit("fsync")
        faults.hit("write")
        with pytest.raises(OSError) as raised:
            faults.hit("fsync", "here")
        assert raised.value.errno == errno.EIO and raised.value.filename == "here"
        for _ in range(2):
            with pytest.raises(OSError) as raised:
                faults.hit("write")
            assert raised.value.errno == errno.ENOSPC
        faults.hit("write")
        faults.configure(f"count:{tmp_path / 'ops'}")
        faults.hit("mkdir", tmp_path / "a")
        faults.hit("rename", tmp_path / "b")
        assert [(r.ordinal, r.kind, r.pid) for r in faults.records(tmp_path / "ops")] == [
            (1, "mkdir", os.getpid()), (2, "rename", os.getpid())]
        for bad in ("crash:disk:1", "error:write:EWHAT:1", "crash:any:0", "crash:any", "count:", "boom"):
            with pytest.raises(ValueError, match="LF_FAULTS"):
                faults.parse(bad)
    finally:
        faults.configure(None)


# --- commands ---------------------------------------------------------------------------------------


def test_lf_start_fails_cleanly_at_every_write_fsync_rename_and_mkdir(tmp_path):
    home = make_home(tmp_path)
    assert run_lf(home, None, "start", "Life", "--id", "other").returncode == 0  # var/ exists, as usually
    other = history_bytes(home, "other")
    ops = tmp_path / "ops"
    assert run_lf(home, f"count:{ops}", "start", "Life", "--id", "probe").returncode == 0
    seen: Counter = Counter()
    cases = []
    for record in faults.records(ops):
        seen[record.kind] += 1
        for name in (("EIO", "ENOSPC") if record.kind in ("write", "fsync") else ("EIO",)):
            cases.append((record.kind, seen[record.kind], name))
    assert {kind for kind, _, _ in cases} == {"write", "fsync", "rename", "mkdir"} and len(cases) >= 15, cases

    for kind, number, name in cases:
        workflow_id = f"s-{kind}{number}-{name.lower()}"
        done = run_lf(home, f"error:{kind}:{name}:{number}", "start", "Life", "--id", workflow_id)
        assert_one_clear_line(done, name)
        assert done.stdout == "", f"{kind} #{number}: the id was printed: {done.stdout}"
        assert workflow_id in done.stderr  # the workflow's path, not a staging directory's
        workflows = sorted(p.name for p in (home / "var" / "workflows").iterdir())
        assert workflow_id not in workflows and not [w for w in workflows if w.startswith(".")], \
            f"{kind} #{number} {name}: a half-made workflow is left: {workflows}"
        assert history_bytes(home, "other") == other
        again = run_lf(home, None, "start", "Life", "--id", workflow_id)
        assert again.returncode == 0, again.stderr  # nothing of the failed start stands in the way
        assert [r["type"] for r in valid(home, workflow_id)] == ["WorkflowStarted"]


@pytest.mark.parametrize("name", ["EIO", "ENOSPC"])
@pytest.mark.parametrize("kind", ["write", "fsync"])
@pytest.mark.parametrize("command", ["signal", "cancel"])
def test_lf_signal_and_cancel_fail_cleanly_and_change_nothing(tmp_path, command, kind, name):
    home = make_home(tmp_path)
    assert run_lf(home, None, "start", "Life", "--id", WID).returncode == 0
    args = ["signal", WID, "approve", "--data", '{"by": "ann"}'] if command == "signal" else ["cancel", WID]
    before = history_bytes(home, WID)

    done = run_lf(home, f"error:{kind}:{name}:1", *args)

    assert_one_clear_line(done, name)
    assert history_bytes(home, WID) == before  # (a written but unsynced batch is cut back off)
    valid(home, WID)
    assert run_lf(home, None, *args).returncode == 0
    wanted = "SignalReceived" if command == "signal" else "CancelRequested"
    assert [r["type"] for r in valid(home, WID)][:2] == ["WorkflowStarted", wanted]  # (then its decisions)


# --- a supervisor -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uncrashed(tmp_path_factory) -> tuple[list, dict]:
    """The supervisor's operations in an uncrashed life (kind, its ordinal among the supervisor's operations
    of that kind, site, what), and how the life ends."""
    root = tmp_path_factory.mktemp("io-baseline")
    home = make_home(root)
    life = Life(home, f"count:{root / 'ops'}")
    life.run()
    ops = faults.records(root / "ops")
    pid = next(r.pid for r in ops if r.kind == "worker")
    seen: Counter = Counter()
    found = []
    for record in ops:
        if record.pid == pid:
            seen[record.kind] += 1
            found.append((record.kind, seen[record.kind], record.site, record.what))
    return found, outcome(home)


@pytest.fixture
def supervisor_ops(uncrashed) -> list:
    return uncrashed[0]


@pytest.fixture
def wanted(uncrashed) -> dict:
    return uncrashed[1]


def nth_append(ops: list, kind: str, workflow_id: str, n: int) -> int:
    """The ordinal (among the supervisor's operations of ``kind``) of the n-th append to a history."""
    appends = [number for k, number, site, what in ops
               if k == kind and ":append" in site and what.endswith(f"workflows/{workflow_id}/history.jsonl")]
    return appends[n - 1]


def run_faulty_supervisor(tmp_path: Path, spec: str, timeout: float = 60) -> tuple[Life, list]:
    home = make_home(tmp_path)
    exits: list = []
    life = Life(home, spec, supervisor_only=True, exits=exits)
    life.run(timeout=timeout)
    return life, exits


def assert_carried_on(life: Life, exits: list, wanted: dict) -> str:
    log = "\n".join(s.output() for s in life.supervisors)
    assert exits == [] and len(life.supervisors) == 1, f"the supervisor exited: {exits}\n{log}"
    assert "Traceback" not in log and "internal error" not in log, log
    assert life.acked == ["start", "signal"]
    assert outcome(life.home) == wanted, log
    return log


# (which append, kind, errno): each fails once; the supervisor logs it, goes on, and the life ends as
# it would have without the fault
TRANSIENT = [
    ("the first (the first step scheduled)", 1, "write", "EIO"),
    ("the first (the first step scheduled)", 1, "fsync", "ENOSPC"),
    ("an ActivityStarted", 2, "write", "ENOSPC"),
    ("an ActivityStarted", 2, "fsync", "EIO"),
    ("a TimerFired, from the loop", 5, "fsync", "EIO"),
]


@pytest.mark.parametrize("what, n, kind, name", TRANSIENT, ids=[f"{t[0]}-{t[2]}-{t[3]}" for t in TRANSIENT])
def test_a_supervisor_whose_append_fails_logs_it_and_carries_on(tmp_path, supervisor_ops, wanted, what, n, kind,
                                                               name):
    number = nth_append(supervisor_ops, kind, WID, n)
    life, exits = run_faulty_supervisor(tmp_path, f"error:{kind}:{name}:{number}")
    log = assert_carried_on(life, exits, wanted)
    assert f"could not append to {life.home / 'var' / 'workflows' / WID / 'history.jsonl'}: " \
           f"{MESSAGES[name]}" in log, log


def test_a_supervisor_on_a_disk_full_for_a_while_retries_until_it_is_not(tmp_path, supervisor_ops, wanted):
    first = nth_append(supervisor_ops, "write", WID, 1)
    life, exits = run_faulty_supervisor(tmp_path, f"error:write:ENOSPC:{first}-{first + 2}")
    log = assert_carried_on(life, exits, wanted)
    assert log.count("the disk is full") >= 1, log  # (said once per workflow and error, not at every retry)


@pytest.mark.parametrize("kind", ["write", "rename"])
def test_a_supervisor_that_cannot_record_itself_exits_with_one_clear_line(tmp_path, kind):
    home = make_home(tmp_path)
    sup = Supervisor(home, f"error:{kind}:EIO:1")  # var/supervisor.json, before anything else
    try:
        assert sup.process.wait(timeout=30) == 3
    finally:
        sup.kill()
    lines = sup.output().splitlines()
    assert lines == [f"error: could not write {home / 'var' / 'supervisor.json'}: Input/output error"], lines
    assert sorted(p.name for p in (home / "var").iterdir() if p.is_file()) == ["supervisor.lock"]  # no *.tmp


def test_a_failed_append_of_a_successful_outcome_does_not_fail_the_step(tmp_path, supervisor_ops, wanted):
    number = nth_append(supervisor_ops, "write", WID, 3)  # prepare's ActivityCompleted
    life, exits = run_faulty_supervisor(tmp_path, f"error:write:EIO:{number}")
    assert_carried_on(life, exits, wanted)


def test_a_failed_timer_marker_removal_does_not_stall_the_workflow(tmp_path, supervisor_ops, wanted):
    number = next(n for kind, n, site, what in supervisor_ops if kind == "fsync" and site.endswith(":remove"))
    life, exits = run_faulty_supervisor(tmp_path, f"error:fsync:ENOSPC:{number}", timeout=8)
    assert_carried_on(life, exits, wanted)


# --- a real full disk ---------------------------------------------------------------------------------

REAL_DISK = textwrap.dedent(r'''
    import json, os, subprocess, sys, time
    mount, python = sys.argv[1], sys.argv[2]
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mount], capture_output=True, text=True)
    if made.returncode:
        print(json.dumps({"skip": made.stderr.strip()}))
        sys.exit(0)
    home = os.path.join(mount, "home")
    os.makedirs(os.path.join(home, "flows"))
    with open(os.path.join(home, "flows", "Echo.flow"), "w") as f:
        f.write('flow Echo\n  input word = "hi"\n  step say:\n    run ["echo", word]\n  return say.result\n')
    os.utime(os.path.join(home, "flows", "Echo.flow"), (time.time() - 3600,) * 2)

    def lf(*args):
        done = subprocess.run([python, "-m", "localflow", "--home", home, *args], capture_output=True, text=True,
                              cwd=home, timeout=60)
        return {"code": done.returncode, "out": done.stdout, "err": done.stderr}

    def status(wid):
        done = lf("inspect", wid, "--json")
        return json.loads(done["out"])["status"] if done["code"] == 0 else None

    def wait(predicate, seconds=30):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.1)
        return False

    def fill():
        with open(os.path.join(home, "filler"), "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
            except OSError:
                pass

    found = {}
    log = open(os.path.join(mount, "..", "supervisor.log"), "w")
    sup = subprocess.Popen([python, "-m", "localflow", "--home", home, "supervise", "--rescan", "1"],
                           stdout=log, stderr=subprocess.STDOUT, cwd=home)
    found["first"] = lf("start", "Echo", "--id", "first")
    found["first_done"] = wait(lambda: status("first") == "completed")
    fill()
    found["full"] = lf("start", "Echo", "--id", "second", "-i", "word=full")
    found["left"] = sorted(os.listdir(os.path.join(home, "var", "workflows")))
    time.sleep(1.5)  # a rescan or two on the full disk
    found["alive_while_full"] = sup.poll() is None
    os.unlink(os.path.join(home, "filler"))
    found["freed"] = lf("start", "Echo", "--id", "second", "-i", "word=free")
    found["second_done"] = wait(lambda: status("second") == "completed")
    sup.terminate()
    found["stopped"] = sup.wait(timeout=30)
    fill()
    done = subprocess.run([python, "-m", "localflow", "--home", home, "supervise"], capture_output=True, text=True,
                          timeout=60)
    found["supervise_full"] = {"code": done.returncode, "err": done.stderr}
    os.unlink(os.path.join(home, "filler"))
    found["histories"] = {w: open(os.path.join(home, "var", "workflows", w, "history.jsonl"), "rb").read().decode()
                          for w in ("first", "second")}
    print(json.dumps(found))
''')


def test_a_real_full_disk_fails_lf_start_cleanly_and_the_supervisor_carries_on(tmp_path):
    """A 256 KiB tmpfs, mounted in a user+mount namespace (`unshare -rm`): no root needed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1) here")
    mount = tmp_path / "disk"
    mount.mkdir()
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([unshare, "--user", "--map-root-user", "--mount", sys.executable, "-c", REAL_DISK,
                           str(mount), sys.executable], capture_output=True, text=True, timeout=240, env=env)
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"no user and mount namespaces here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    if "skip" in found:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {found['skip']}")
    log = (tmp_path / "supervisor.log").read_text()

    assert found["first"]["code"] == 0 and found["first_done"], log
    full = found["full"]
    assert full["code"] == 3 and full["out"] == "", full
    assert full["err"].splitlines() == [
        f"error: could not create workflow {mount}/home/var/workflows/second: "
        "the disk is full; free some space and retry"], full
    assert found["left"] == ["first"]  # no half-made workflow, no staging directory
    assert found["alive_while_full"] and "Traceback" not in log, log
    assert found["freed"]["code"] == 0 and found["second_done"], log
    assert found["stopped"] == 0
    refused = found["supervise_full"]
    assert refused["code"] == 3 and refused["err"].splitlines() == [f"error: could not write {mount}/home/var/"
                                                                    f"supervisor.json: {MESSAGES['ENOSPC']}"], refused
    for workflow_id, text in found["histories"].items():
        recs = history.parse(Path(workflow_id), text.encode()).records
        assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1)) and recs[-1]["type"] == "WorkflowCompleted"
    assert json.loads(found["histories"]["second"].splitlines()[-1])["result"] == "free"
