"""Shared test fixtures: a LocalFlow home in a temp dir, the real `lf` CLI, a real supervisor."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def write_flow(home: Path, name: str, text: str) -> Path:
    path = home / "flows" / f"{name}.flow"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def home(tmp_path) -> Path:
    """A fresh home holding a copy of the repo's flows/ (PurchaseFlow and its activities)."""
    target = tmp_path / "home"
    shutil.copytree(REPO / "flows", target / "flows")
    return target


def lf(home: Path, *args: str, timeout: float = 60, input_: str | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI (`python -m localflow`) against ``home``."""
    env = {**os.environ, "COLUMNS": "200"}  # tables as wide as a big terminal, whatever pytest's is
    return subprocess.run(
        [sys.executable, "-m", "localflow", "--home", str(home), *args],
        capture_output=True, text=True, timeout=timeout, cwd=home, input=input_, env=env,
    )


def lf_json(home: Path, *args: str):
    done = lf(home, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class SupervisorProcess:
    """A real `lf supervise` process whose output goes to a file we can read."""

    def __init__(self, home: Path, *extra: str) -> None:
        self.home = home
        self.log_path = home.parent / f"supervisor-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localflow", "--home", str(home), "supervise", "--rescan", "1", *extra],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=home, start_new_session=False,
        )
        wait_for(lambda: "supervising" in self.output() or self.process.poll() is not None,
                 what="supervisor start")

    def output(self) -> str:
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self._log.close()
        return code


@pytest.fixture
def supervisor(home):
    started: list[SupervisorProcess] = []

    def start(*extra: str) -> SupervisorProcess:
        proc = SupervisorProcess(home, *extra)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.process.poll() is None:
            proc.stop(signal.SIGKILL)


def history_records(home: Path, workflow_id: str) -> list[dict]:
    from localflow.store import history

    return history.read(home / "var" / "workflows" / workflow_id / "history.jsonl").records


def workflow_status(home: Path, workflow_id: str) -> str | None:
    try:
        records = history_records(home, workflow_id)
    except FileNotFoundError:
        return None
    types = {r["type"] for r in records}
    if "WorkflowCompleted" in types:
        return "completed"
    if "WorkflowFailed" in types:
        return "failed"
    return "running"


os.environ.setdefault("PYTHONUNBUFFERED", "1")


def alive(pid: int) -> bool:
    """Is process ``pid`` running? (Linux /proc; a zombie, dead but not yet reaped, counts as gone.)"""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def pytest_addoption(parser):
    """Long variants of the crash-safety tests (tests/crash/), off by default to keep the suite short."""
    group = parser.getgroup("localflow crash safety")
    group.addoption("--all-crash-points", action="store_true", default=False,
                    help="tests/crash: crash at every k-th write/fsync/rename/mkdir/unlink/spawn, not a sample")
    group.addoption("--kills", type=int, default=50,
                    help="tests/crash: how many random kill -9 of the supervisor the kill harness makes (default 50)")
