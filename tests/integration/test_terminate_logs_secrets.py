"""Issue 10, with real processes: `lf terminate`, `lf logs`, a step's env and cwd, secrets, the allowlist."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import lf, lf_json, wait_for, write_flow
from conftest import alive as _alive

SECRET = "s3cr3t-Value-8f41c2"
SLOW = """flow Slow
  step a:
    run ["sh", "-c", "echo started; sleep 120"]
    undo ["sh", "-c", "echo undone > undone.txt"]
  step b:
    run ["true"]
  return 1
"""
PARENT = """flow Parent
  parallel:
    branch:
      step p:
        run ["sh", "-c", "echo p-started; sleep 120"]
    branch:
      step kid:
        flow Kid
  return 1
"""
KID = """flow Kid
  step k:
    run ["sleep", "121"]
  return 2
"""


def _env(**extra: str) -> dict:
    return {**os.environ, "COLUMNS": "200", **extra}


def _lf_env(home: Path, env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localflow", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=home, env=env)


def _records(home: Path, workflow_id: str) -> list[dict]:
    return [json.loads(line) for line in (home / "var/workflows" / workflow_id / "history.jsonl").read_text().splitlines()]


def _pids(home: Path, workflow_id: str) -> list[int]:
    return [r["pid"] for r in _records(home, workflow_id) if r["type"] == "ActivityStarted"]


def _status(home: Path, workflow_id: str) -> str:
    return lf_json(home, "inspect", workflow_id)["status"]


# --- terminate ---------------------------------------------------------------------


def test_terminate_under_a_supervisor_kills_the_attempts_and_the_children(home, supervisor):
    write_flow(home, "Parent", PARENT)
    write_flow(home, "Kid", KID)
    supervisor()
    assert lf(home, "start", "Parent", "--id", "t1").returncode == 0
    wait_for(lambda: _pids(home, "t1") and (home / "var/workflows/t1.kid").exists() and _pids(home, "t1.kid"),
             what="the attempts to run")
    pids = _pids(home, "t1") + _pids(home, "t1.kid")
    done = lf(home, "terminate", "t1", "--reason", "stuck")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: not any(_alive(p) for p in pids), what="the processes to be killed")
    wait_for(lambda: _status(home, "t1") == "terminated" and _status(home, "t1.kid") == "terminated",
             what="both terminated")
    records = _records(home, "t1")
    assert records[-1]["type"] in ("ActivityFailed", "ChildFailed")
    assert any(r["type"] == "WorkflowTerminated" and r["reason"] == "stuck" for r in records)
    assert not any(r["type"] in ("CompensationStarted", "WorkflowCancelled") for r in records)
    assert any(r["type"] == "WorkflowTerminated" and "t1 was terminated" in r["reason"]
               for r in _records(home, "t1.kid"))
    listed = lf_json(home, "list", "--status", "terminated")
    assert {row["id"] for row in listed} == {"t1", "t1.kid"}
    again = lf(home, "terminate", "t1")
    assert again.returncode == 6 and "already terminated" in again.stderr
    resumed = lf(home, "resume", "t1")
    assert resumed.returncode != 0 and "terminated" in resumed.stderr and "fork" in resumed.stderr


def test_terminate_without_a_supervisor_kills_what_a_crashed_runner_left(home):
    write_flow(home, "Slow", SLOW)
    runner = subprocess.Popen([sys.executable, "-m", "localflow", "--home", str(home), "run", "Slow", "--id", "t2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home, start_new_session=True)
    try:
        wait_for(lambda: (home / "var/workflows/t2").exists() and _pids(home, "t2"), what="the attempt to run")
    finally:
        runner.send_signal(signal.SIGKILL)  # the runner dies; its attempt's processes do not
        runner.wait()
    pid = _pids(home, "t2")[0]
    assert _alive(pid)
    done = lf(home, "terminate", "t2", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["executor"]["role"] == "lf terminate"
    wait_for(lambda: not _alive(pid), timeout=10, what="the orphan to be killed")
    records = _records(home, "t2")
    assert [r["type"] for r in records[-2:]] == ["WorkflowTerminated", "ActivityFailed"]
    assert _status(home, "t2") == "terminated"
    assert not (home / "undone.txt").exists()  # no compensation
    assert "terminated" in lf(home, "history", "t2").stdout


# --- logs ----------------------------------------------------------------------------


def test_logs_of_a_finished_workflow(home):
    write_flow(home, "Talk", """flow Talk
  step one:
    run ["sh", "-c", "echo out-one; echo err-one >&2"]
  step two:
    run ["sh", "-c", "printf 'raw\\\\001bytes'"]
  return 1
""")
    assert lf(home, "run", "Talk", "--id", "l1").returncode == 0
    shown = lf(home, "logs", "l1")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.index("==> one attempt 1: stdout") < out.index("out-one") < out.index("==> one attempt 1: stderr") \
        < out.index("err-one") < out.index("==> two attempt 1: stdout")
    raw = subprocess.run([sys.executable, "-m", "localflow", "--home", str(home), "logs", "l1", "two", "--stdout"],
                         capture_output=True, cwd=home)
    assert raw.returncode == 0 and raw.stdout == b"raw\x01bytes"  # the bytes as they are, no header
    assert lf(home, "logs", "l1", "one", "--stderr").stdout == "err-one\n"
    unknown = lf(home, "logs", "nope")
    assert unknown.returncode == 5 and "no workflow 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    step = lf(home, "logs", "l1", "three")
    assert step.returncode == 2 and "three" in step.stderr and "one, two" in step.stderr
    attempt = lf(home, "logs", "l1", "one", "--attempt", "5")
    assert attempt.returncode == 2 and "no attempt 5" in attempt.stderr
    assert lf(home, "logs", "l1", "--attempt", "1").returncode == 2


def test_logs_follow_a_running_workflow_until_it_ends(home, supervisor):
    write_flow(home, "Ticks", """flow Ticks
  step tick:
    run ["sh", "-c", "for i in 1 2 3 4 5; do echo tick-$i; sleep 0.4; done"]
  step tock:
    run ["sh", "-c", "echo tock-done"]
  return 1
""")
    supervisor()
    assert lf(home, "start", "Ticks", "--id", "l2").returncode == 0
    wait_for(lambda: _pids(home, "l2"), what="tick to run")
    started = time.monotonic()
    followed = lf(home, "logs", "l2", "--follow", timeout=60)
    assert followed.returncode == 0, followed.stderr
    assert time.monotonic() - started > 0.5  # it waited for the output still to come
    lines = followed.stdout.splitlines()
    assert [line for line in lines if line.startswith("tick-")] == [f"tick-{i}" for i in range(1, 6)]
    assert "tock-done" in lines and _status(home, "l2") == "completed"


# --- env, cwd, secrets, the allowlist ---------------------------------------------------


PROBE = """flow Probe
  input who = "x"

  step probe:
    run ["python3", "-c", "import hashlib, json, os, sys; h = lambda t: hashlib.sha256(t.encode()).hexdigest(); data = json.load(sys.stdin); print(json.dumps({'cwd': os.getcwd(), 'lang': os.environ.get('LANG'), 'token': h(os.environ['TOKEN']), 'arg': h(sys.argv[1]), 'stdin': h(data['token']), 'unlisted': os.environ.get('UNLISTED_VAR'), 'passed': os.environ.get('PASSED_VAR'), 'secret_var': os.environ.get('LF_SECRET_TOKEN'), 'step': os.environ.get('LF_STEP')}))", f"Bearer {secret('TOKEN')}"]
    env {"LANG": "C", "TOKEN": secret("TOKEN")}
    cwd "work/area"
    stdin {"token": secret("TOKEN"), "who": who}
  return probe.result
"""


def test_env_cwd_and_a_secret_reach_the_process_and_nothing_of_the_secret_is_stored(home):
    write_flow(home, "Probe", PROBE)
    (home / "work/area").mkdir(parents=True)
    env = _env(LF_SECRET_TOKEN=SECRET, UNLISTED_VAR="dropped", PASSED_VAR="kept", LF_PASS_ENV="PASSED_VAR")
    done = _lf_env(home, env, "run", "Probe", "--id", "s1")
    assert done.returncode == 0, done.stdout + done.stderr
    result = lf_json(home, "inspect", "s1")["result"]
    digest = lambda text: hashlib.sha256(text.encode()).hexdigest()  # noqa: E731
    assert result["cwd"] == str((home / "work/area").resolve())
    assert result["lang"] == "C" and result["step"] == "probe"
    assert result["token"] == result["stdin"] == digest(SECRET)
    assert result["arg"] == digest(f"Bearer {SECRET}")
    assert result["unlisted"] is None and result["passed"] == "kept"  # the allowlist, LF_PASS_ENV
    assert result["secret_var"] is None  # LF_SECRET_* never passes
    grep = subprocess.run(["grep", "-r", SECRET, str(home / "var")], capture_output=True, text=True)
    assert grep.returncode == 1, grep.stdout  # nothing under var/ holds the value
    stored = (home / "var/workflows/s1/logs/probe.1.in").read_text()
    assert "${secret:TOKEN}" in stored
    assert "${secret:TOKEN}" in lf(home, "inspect", "s1", "--json").stdout + lf(home, "history", "s1", "--json").stdout


def test_a_missing_secret_fails_the_attempt_with_kind_spawn(home):
    write_flow(home, "Probe", PROBE)
    (home / "work/area").mkdir(parents=True)
    env = {k: v for k, v in _env().items() if not k.startswith("LF_SECRET_")}
    done = _lf_env(home, env, "run", "Probe", "--id", "s2")
    assert done.returncode == 1
    failed = [r for r in _records(home, "s2") if r["type"] == "ActivityFailed"]
    assert failed[0]["error"]["kind"] == "spawn"
    assert "missing secret TOKEN" in failed[0]["error"]["message"] and "LF_SECRET_TOKEN" in failed[0]["error"]["message"]


def test_a_cwd_outside_the_home_is_a_flow_error(home):
    write_flow(home, "Escape", """flow Escape
  step a:
    run ["true"]
    cwd "../elsewhere"
  step b:
    run ["true"]
    cwd "/tmp"
  return 1
""")
    done = lf(home, "validate", "flows/Escape.flow")
    assert done.returncode == 2
    assert "goes up with '..'" in done.stdout + done.stderr and "is absolute" in done.stdout + done.stderr


def test_a_secret_a_process_repeats_in_its_error_or_result_is_stored_as_its_reference(home):
    """(Found by review: a failing step's last stderr line, holding the value, went into the history.)"""
    write_flow(home, "Echo", """flow Echo
  step said:
    run ["sh", "-c", "echo \\"token is $AUTH\\""]
    env {"AUTH": secret("TOKEN")}
  step failed:
    run ["sh", "-c", "echo \\"auth failed for $AUTH\\" >&2; exit 3"]
    env {"AUTH": secret("TOKEN")}
  return 1
""")
    done = _lf_env(home, _env(LF_SECRET_TOKEN=SECRET), "run", "Echo", "--id", "e1")
    assert done.returncode == 1
    grep = subprocess.run(["grep", "-r", "--exclude-dir=logs", SECRET, str(home / "var")],
                          capture_output=True, text=True)
    assert grep.returncode == 1, grep.stdout  # neither the result nor the error holds the value
    shown = lf(home, "inspect", "e1", "--json").stdout
    assert "token is ${secret:TOKEN}" in shown and "auth failed for ${secret:TOKEN}" in shown
    assert SECRET not in shown


def test_an_input_or_a_signal_may_not_carry_a_secret_reference(home):
    """(Found by review: `-i note='${secret:TOKEN}'` had the runner fill the secret in where the flow
    never put it.)"""
    write_flow(home, "Note", 'flow Note\n  input note = ""\n  step w:\n    wait signal go\n  return note\n')
    done = lf(home, "start", "Note", "-i", "note=${secret:TOKEN}")
    assert done.returncode == 2 and "secret reference" in done.stderr
    assert lf(home, "start", "Note", "--id", "n1").returncode == 0
    signal = lf(home, "signal", "n1", "go", "--data", '"${secret:TOKEN}"')
    assert signal.returncode == 2 and "secret reference" in signal.stderr
