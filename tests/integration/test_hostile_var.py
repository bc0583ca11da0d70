"""A hostile or careless var/: symlinks where LocalFlow expects its own files, values it cannot store.

Every case ends in one clear line and a documented exit code, writes nothing outside
the LocalFlow home, and never breaks commands about other workflows.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import history_records, lf, lf_json, wait_for, write_flow

WAITER = "flow Waiter\n  step approval:\n    wait signal approve\n  return approval.result\n"


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    return outside


def _waiting(home: Path, workflow_id: str) -> Path:
    write_flow(home, "Waiter", WAITER)
    done = lf(home, "start", "Waiter", "--id", workflow_id)
    assert done.returncode == 0, done.stderr
    return home / "var" / "workflows" / workflow_id


def _no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr


# --- symlinks inside var/ ------------------------------------------------------------


def test_signal_to_a_workflow_dir_that_is_a_symlink_writes_nothing_outside(home, tmp_path):
    real = _waiting(home, "real")
    outside = _outside(tmp_path) / "victim"
    real.rename(outside)
    os.symlink(outside, home / "var" / "workflows" / "evil")
    before = (outside / "history.jsonl").read_bytes()

    done = lf(home, "signal", "evil", "approve", "--data", "1")

    assert done.returncode == 3 and "symlink" in done.stderr and "evil" in done.stderr
    _no_traceback(done)
    assert (outside / "history.jsonl").read_bytes() == before


def test_start_with_an_id_whose_dir_is_a_symlink_creates_nothing_outside(home, tmp_path):
    outside = _outside(tmp_path)
    (home / "var" / "workflows").mkdir(parents=True)
    os.symlink(outside, home / "var" / "workflows" / "taken")

    done = lf(home, "start", "PurchaseFlow", "--id", "taken")

    assert done.returncode == 3 and "symlink" in done.stderr
    _no_traceback(done)
    assert list(outside.iterdir()) == []
    assert [p.name for p in (home / "var" / "workflows").iterdir()] == ["taken"]  # no staging left


@pytest.mark.parametrize("name", ["history.jsonl", "lock"])
def test_a_symlinked_file_in_one_workflow_never_breaks_the_others(home, tmp_path, name):
    good = _waiting(home, "good")
    bad = _waiting(home, "bad")
    target = _outside(tmp_path) / name
    (bad / name).rename(target)
    os.symlink(target, bad / name)
    before = target.read_bytes()

    listing = lf(home, "list")
    signal = lf(home, "signal", "bad", "approve")
    inspect = lf(home, "inspect", "bad")

    assert listing.returncode == 0 and "good" in listing.stdout
    if name == "history.jsonl":
        assert "bad" in listing.stderr and "symlink" in listing.stderr
    for done in (listing, signal, inspect):
        _no_traceback(done)
    assert signal.returncode == 3 and "symlink" in signal.stderr
    assert target.read_bytes() == before
    assert lf(home, "signal", "good", "approve").returncode == 0
    assert good.is_dir()


def test_a_symlinked_supervisor_lock_warns_but_does_not_undo_what_was_recorded(home, tmp_path):
    _waiting(home, "w1")
    lock = home / "var" / "supervisor.lock"
    target = _outside(tmp_path) / "supervisor.lock"
    target.write_bytes(b"")
    lock.unlink(missing_ok=True)
    os.symlink(target, lock)

    started = lf(home, "start", "Waiter", "--id", "w2")
    signalled = lf(home, "signal", "w1", "approve", "--data", '"yes"')
    supervise = lf(home, "supervise", timeout=30)

    assert started.returncode == 0 and started.stdout.strip() == "w2" and "warning" in started.stderr
    assert signalled.returncode == 0 and "warning" in signalled.stderr
    assert any(r["type"] == "SignalReceived" for r in history_records(home, "w1"))
    assert supervise.returncode == 3 and "supervisor.lock" in supervise.stderr
    for done in (started, signalled, supervise):
        _no_traceback(done)


def test_symlinked_timers_dir_receives_no_marker(home, tmp_path, supervisor):
    write_flow(home, "Sleepy", "flow Sleepy\n  sleep 30s\n  return 1\n")
    (home / "var").mkdir()
    outside = _outside(tmp_path)
    os.symlink(outside, home / "var" / "timers")
    lf(home, "start", "Sleepy", "--id", "sleepy")

    sup = supervisor()
    wait_for(lambda: "timers" in sup.output() and "symlink" in sup.output(), what="the refusal in the log")

    assert list(outside.iterdir()) == []
    assert "Traceback" not in sup.output()


# --- values LocalFlow cannot store -----------------------------------------------------


@pytest.mark.parametrize("args", [
    ["-i", "amount=NaN"],  # (order_id is text, by its default: -i order_id=NaN is the text "NaN")
    ["-i", "amount=Infinity"],
    ["-i", "amount=1e999"],
    ["--input", '{"order_id": NaN}'],
    ["--input", '{"order_id": "\\ud800"}'],
    ["-i", "amount=" + "[" * 10000],
    ["--input", '{"order_id": ' + "[" * 10000 + "]" * 10000 + "}"],
    ["-i", "amount=" + "[" * 100 + "]" * 100],
])
@pytest.mark.parametrize("command", ["start", "run"])
def test_unstorable_input_is_refused_before_anything_is_created(home, command, args):
    done = lf(home, command, "PurchaseFlow", "--id", "odd", *args)

    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    _no_traceback(done)
    assert not (home / "var" / "workflows" / "odd").exists()


def test_non_utf8_bytes_on_the_command_line_are_refused(home):
    done = subprocess.run([*lf_argv(home), "start", "PurchaseFlow", "--id", "odd", "-i", b"order_id=\xff\xfe"],
                          capture_output=True, cwd=home)
    assert done.returncode == 2 and b"Unicode" in done.stderr and b"Traceback" not in done.stderr
    assert not (home / "var" / "workflows" / "odd").exists()


def lf_argv(home: Path) -> list:
    import sys
    return [sys.executable, "-m", "localflow", "--home", str(home)]


@pytest.mark.parametrize("data", ["NaN", "-Infinity", "1e999", '"\\udc80"', "[" * 10000 + "]" * 10000])
def test_unstorable_signal_data_is_refused_and_nothing_is_appended(home, data):
    _waiting(home, "w")
    before = len(history_records(home, "w"))

    done = lf(home, "signal", "w", "approve", f"--data={data}")

    assert done.returncode == 2 and done.stderr.startswith("error: --data")
    _no_traceback(done)
    assert len(history_records(home, "w")) == before


@pytest.mark.parametrize("workflow_id", ["nl\n", "a/b", "..", "-x", "x" * 129])
def test_ids_that_are_not_names_are_refused(home, workflow_id):
    done = lf(home, "start", "PurchaseFlow", f"--id={workflow_id}")
    assert done.returncode == 2 and "invalid workflow id" in done.stderr
    assert not (home / "var" / "workflows").exists() or list((home / "var" / "workflows").iterdir()) == []


def test_a_signal_name_the_language_cannot_declare_is_refused(home):
    _waiting(home, "w")
    done = lf(home, "signal", "w", "bad name!")
    assert done.returncode == 2 and "invalid signal name" in done.stderr
    assert not any(r["type"] == "SignalReceived" for r in history_records(home, "w"))


def test_a_signal_the_flow_never_waits_for_is_recorded_with_a_warning(home):
    _waiting(home, "w")
    done = lf(home, "signal", "w", "aprove")
    assert done.returncode == 0
    assert "never waits for signal 'aprove'" in done.stderr and "approve" in done.stderr


def test_a_decision_too_large_to_record_fails_the_workflow_with_that_message(home):
    write_flow(home, "Huge", "flow Huge\n  set a = range(100000)\n"
                             "  set b = [a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a]\n  return 1\n")
    done = lf(home, "run", "Huge", "--id", "huge", timeout=60)

    assert done.returncode == 1
    state = lf_json(home, "inspect", "huge")
    assert state["status"] == "failed"
    assert "event VariableSet is" in state["error"]["message"] and "over the limit" in state["error"]["message"]


# --- a full disk -----------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs holding a LocalFlow home (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        home = mount / "home"
        write_flow(home, "Waiter", WAITER)
        yield home
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(home: Path) -> None:
    with open(home / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


def test_start_on_a_full_disk_says_so_and_leaves_no_half_made_workflow(small_disk):
    assert lf(small_disk, "start", "Waiter", "--id", "first").returncode == 0
    _fill(small_disk)

    done = lf(small_disk, "start", "Waiter", "--id", "second", "--input", json.dumps({}))

    assert done.returncode == 3 and "disk is full" in done.stderr
    _no_traceback(done)
    assert sorted(p.name for p in (small_disk / "var" / "workflows").iterdir()) == ["first"]


@pytest.mark.parametrize("command", [["signal", "w", "approve"], ["cancel", "w"]])
def test_signal_or_cancel_with_a_torn_tail_on_a_full_disk_says_so(small_disk, command):
    assert lf(small_disk, "start", "Waiter", "--id", "w").returncode == 0
    with open(small_disk / "var" / "workflows" / "w" / "history.jsonl", "ab") as handle:
        handle.write(b'{"seq":2,"ts":"2026')  # a crash's torn tail
    _fill(small_disk)

    done = lf(small_disk, *command)

    assert done.returncode == 3 and "disk is full" in done.stderr
    _no_traceback(done)
    assert [r["type"] for r in history_records(small_disk, "w")] == ["WorkflowStarted"]


def test_two_supervisors_started_at_once_the_refusal_names_the_holder(home):
    (home / "var").mkdir()
    argv = [*lf_argv(home), "supervise"]
    procs = [subprocess.Popen(argv, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        loser = wait_for(lambda: next((p for p in procs if p.poll() is not None), None), what="one to give up")
        winner = next(p for p in procs if p is not loser)
        message = loser.stderr.read()
        assert loser.returncode != 0 and f"supervisor pid {winner.pid}" in message, message
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def test_a_symlinked_logs_dir_fails_the_attempt_and_writes_nothing_outside(home, tmp_path, supervisor):
    write_flow(home, "Echo", 'flow Echo\n  step say:\n    run ["echo", "hi"]\n    retry 1 every 1s\n  return say.result\n')
    assert lf(home, "start", "Echo", "--id", "echo").returncode == 0
    outside = _outside(tmp_path)
    os.symlink(outside, home / "var" / "workflows" / "echo" / "logs")

    supervisor()
    wait_for(lambda: lf_json(home, "inspect", "echo")["status"] == "failed", what="the workflow to fail")

    state = lf_json(home, "inspect", "echo")
    assert [a["error"]["kind"] for a in state["steps"][0]["attempts"]] == ["spawn", "spawn"]
    assert "logs" in state["error"]["message"] and "symlink" in state["error"]["message"]
    assert list(outside.iterdir()) == []


def test_a_result_nested_too_deep_fails_the_attempt_once_within_its_retry_policy(home):
    deep = "[" * 980 + "]" * 980
    write_flow(home, "Deep", f'flow Deep\n  step x:\n    run ["python3", "-c", "print(\'{deep}\')"]\n'
                             "    retry 1 every 1s\n  return x.result\n")

    done = lf(home, "run", "Deep", "--id", "deep", timeout=60)

    assert done.returncode == 1 and "nested more than" in done.stdout
    attempts = [r for r in history_records(home, "deep") if r["type"] == "ActivityFailed"]
    assert [a["error"]["kind"] for a in attempts] == ["output", "output"]
