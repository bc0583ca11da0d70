"""`lf watch`, `lf history --follow`, `lf result --wait` and `lf top` against a real supervisor, each
run in a pseudo-terminal (as a user sees it), asserting on what appears as events land."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time

import fcntl
import termios

from conftest import lf, lf_json, write_flow

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Z0-9]|\r")

APPROVAL = 'flow Approve\n  step approval:\n    wait signal approve timeout 60s\n  return approval.result\n'
SLOW = 'flow Slow\n  step crunch:\n    run ["sleep", "2"]\n  return "done"\n'
BROKEN = 'flow Broken\n  step boom:\n    run ["sh", "-c", "echo nope >&2; exit 3"]\n'


def add_flow(home, name: str, text: str) -> None:
    """A flow in flows/views/ (found by name; a file dropped into flows/ itself would start a workflow)."""
    write_flow(home, f"views/{name}", text)


class Pty:
    """`lf ARGS` in a pseudo-terminal 120x40; what it prints is collected as text without escapes."""

    def __init__(self, home, *args: str) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env["TERM"] = "xterm-256color"
        self.process = subprocess.Popen([sys.executable, "-m", "localflow", "--home", str(home), *args],
                                        stdin=slave, stdout=slave, stderr=slave, cwd=home, env=env,
                                        start_new_session=True)
        os.close(slave)
        self.master = master
        self.raw = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.raw += data

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", "replace"))

    def expect(self, pattern: str, timeout: float = 20) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text)
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} after {timeout}s in:\n{self.text[-3000:]}")

    def wait(self, timeout: float = 20) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=2)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        os.close(self.master)


def test_watch_follows_a_workflow_prints_the_signal_command_and_exits_with_its_outcome(home, supervisor):
    supervisor()
    add_flow(home, "Approve", APPROVAL)
    assert lf(home, "start", "Approve", "--id", "w1").returncode == 0
    watch = Pty(home, "watch", "w1", "--exit-status")
    try:
        # Given a workflow waiting for a signal, `lf watch` says which command answers it
        watch.expect(r"waiting for signal 'approve' \(step approval, times out at \d\d:\d\d:\d\dZ\)")
        command = watch.expect(r"lf --home \S+ signal w1 approve --data '\{\}'").group(0)
        assert watch.process.poll() is None
        # When that command is run (with a payload), the signal and the end appear, and it exits 0
        answer = lf(home, *command.split()[3:-2], "--data", '{"by": "ann"}')
        assert answer.returncode == 0, answer.stderr
        watch.expect(r"signal 'approve' received")
        watch.expect(r"w1 completed")
        assert watch.wait() == 0
        assert watch.text.index("started Approve") < watch.text.index("received")
    finally:
        watch.close()
    add_flow(home, "Broken", BROKEN)
    assert lf(home, "start", "Broken", "--id", "b1").returncode == 0
    failing = Pty(home, "watch", "b1", "--exit-status")
    try:
        failing.expect(r"b1 failed")
        assert failing.wait() == 1
    finally:
        failing.close()


def test_history_follow_prints_events_as_they_land(home, supervisor):
    supervisor()
    assert lf(home, "start", "PurchaseFlow", "--id", "h1").returncode == 0
    follow = Pty(home, "history", "h1", "--follow")
    try:
        # While the 2 s sleep runs the events so far are there and the end is not
        follow.expect(r"TimerStarted\s+sleep at line 17: sleeping 2\.0s")
        assert "WorkflowCompleted" not in follow.text and follow.process.poll() is None
        follow.expect(r"WorkflowCompleted\s+completed ->")
        assert follow.wait() == 0
        seqs = [int(n) for n in re.findall(r"^\s*(\d+)\s+\d{4}-\d\d-\d\dT\d\d:\d\d", follow.text, re.M)]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 12  # each event once, in order
    finally:
        follow.close()


def test_result_wait_blocks_until_the_end_and_says_what_happened(home, supervisor):
    supervisor()
    add_flow(home, "Approve", APPROVAL)
    assert lf(home, "start", "Approve", "--id", "r1").returncode == 0
    # Not ended: without --wait it refuses (6); with a short --timeout it gives up (6)
    assert lf(home, "result", "r1").returncode == 6
    assert lf(home, "result", "r1", "--timeout", "0.3").returncode == 6
    waiting = Pty(home, "result", "r1", "--wait")
    try:
        time.sleep(0.5)
        assert waiting.process.poll() is None and waiting.text.strip() == ""
        assert lf(home, "signal", "r1", "approve", "--data", '{"ok": true}').returncode == 0
        assert waiting.wait() == 0
        assert json.loads(waiting.text) == {"ok": True}
    finally:
        waiting.close()
    assert lf_json(home, "result", "r1")["result"] == {"ok": True}
    add_flow(home, "Broken", BROKEN)
    assert lf(home, "start", "Broken", "--id", "r2").returncode == 0
    failed = lf(home, "result", "r2", "--wait", "--timeout", "20")
    assert failed.returncode == 1 and failed.stdout == ""
    assert "r2 failed: step 'boom' failed after 1 attempt" in failed.stderr


def test_top_shows_running_activities_and_updates_as_they_end(home, supervisor):
    supervisor()
    add_flow(home, "Slow", SLOW)
    assert lf(home, "run", "Slow", "--id", "done-1").returncode == 0  # (no supervisor needed: it follows)
    top = Pty(home, "top", "--interval", "0.5")
    try:
        top.expect(r"1 workflow: 0 running, 0 held, 1 completed")
        assert lf(home, "start", "Slow", "--id", "slow-2").returncode == 0
        # The new workflow's running step shows up with its elapsed time, then its end
        top.expect(r"running activities \(1\)")
        top.expect(r"slow-2\s+crunch\s+1\s+running\s+\d+(ms|s)\s+\d+")
        top.expect(r"2 workflows: 0 running, 0 held, 2 completed", timeout=20)
        os.killpg(top.process.pid, signal.SIGINT)  # Ctrl-C leaves it
        assert top.wait() in (0, 130)
    finally:
        top.close()
    frame = lf_json(home, "top", "--once")
    assert frame["counts"]["completed"] == 2 and frame["total"] == 2 and frame["running_activities"] == []


def test_a_file_event_wakes_a_reader_long_before_its_slow_poll(home):
    from localflow.engine import Engine
    from localflow.follow import Wakeup

    add_flow(home, "Approve", APPROVAL)
    engine = Engine(home)
    engine.start("Approve", {}, "e1")
    with Wakeup([(engine.paths.workflow_dir("e1"), False)], engine.paths.workflows_dir) as wake:
        assert wake.watching
        threading.Timer(0.2, lambda: engine.signal("e1", "approve", 1)).start()
        began = time.monotonic()
        assert wake.wait(30) is True  # woken by the append, not by the 30 s timeout
        assert time.monotonic() - began < 5
        assert wake.drain() == ({"e1"}, False)
