"""Many `lf` processes at once against one home under a running supervisor, and two supervisors at once.

16 client threads each run `lf start`, `lf signal` and `lf cancel` as real processes, one after
the other, for LF_STRESS_SECONDS (default 10), against shared workflows (signal loops that all
of them feed, two of which any of them may cancel) and their own (waits they signal or cancel).
Then every history must be intact (contiguous seq, valid checksums, `lf fsck` clean), every
acknowledged signal recorded exactly once and handled once, everything must end (no command
hangs, every workflow finishes), and no stderr may hold a traceback; a refusal must be the
documented one (a workflow that already ended).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from conftest import lf, wait_for, write_flow

from localflow.store import history

HOT = """flow Hot
  set handled = 0
  for job in signal job until signal close parallel 4:
    step handle:
      run ["echo", job.nonce]
    set handled = handled + 1
  return handled
"""
MINE = """flow Mine
  step go:
    wait signal go timeout 10m
  step after:
    run ["echo", "done"]
  return go.result.nonce
"""
WORKERS = 16
HOT_IDS = [f"hot-{i}" for i in range(6)]
CANCELLABLE = {"hot-4", "hot-5"}  # any client may cancel these (concurrently); the others are closed at the end
COMMAND_TIMEOUT_S = 120  # a command still running after this is a deadlock
ENDED = ("WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled", "WorkflowTerminated")
REFUSAL = re.compile(r"^error: workflow '[^']+' is already (completed|cancelled|failed|terminated); cannot ")


class Log:
    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.signals: dict[str, tuple[str, str]] = {}  # nonce -> (workflow id, name), acknowledged
        self.mine: list[str] = []
        self.commands = 0
        self.problems: list[str] = []  # tracebacks, hangs, undocumented refusals

    def ran(self, args: tuple, done: subprocess.CompletedProcess | None) -> bool:
        with self.guard:
            self.commands += 1
            if done is None:
                self.problems.append(f"hung: lf {' '.join(args)}")
                return False
            if "Traceback" in done.stderr + done.stdout:
                self.problems.append(f"traceback: lf {' '.join(args)}\n{done.stderr}")
            elif done.returncode not in (0, 6) or (done.returncode == 6 and not REFUSAL.match(done.stderr)):
                self.problems.append(f"exit {done.returncode}: lf {' '.join(args)}: {done.stderr.strip()}")
            return done.returncode == 0


def run_lf(home: Path, log: Log, *args: str) -> bool:
    try:
        done = lf(home, *args, timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        done = None
    return log.ran(args, done)


def client(home: Path, number: int, until: float, log: Log) -> None:
    rng = random.Random(number)
    mine: list[str] = []
    count = 0
    while time.monotonic() < until:
        count += 1
        roll = rng.random()
        if roll < 0.25 or not mine:
            workflow_id = f"m{number:02d}-{count}"
            if run_lf(home, log, "start", "Mine", "--id", workflow_id):
                mine.append(workflow_id)
        elif roll < 0.65:
            _signal(home, log, rng.choice(HOT_IDS), "job", f"c{number}-{count}")
        elif roll < 0.85:
            _signal(home, log, rng.choice(mine), "go", f"c{number}-{count}")
        elif roll < 0.97:
            run_lf(home, log, "cancel", rng.choice(mine))
        else:
            run_lf(home, log, "cancel", rng.choice(sorted(CANCELLABLE)))
    with log.guard:
        log.mine += mine


def _signal(home: Path, log: Log, workflow_id: str, name: str, nonce: str) -> None:
    if run_lf(home, log, "signal", workflow_id, name, "--data", json.dumps({"nonce": nonce})):
        with log.guard:
            log.signals[nonce] = (workflow_id, name)


def test_sixteen_processes_at_once_keep_every_history_intact_and_every_signal_once(home, supervisor):
    seconds = float(os.environ.get("LF_STRESS_SECONDS", "10"))
    write_flow(home, "Hot", HOT)
    write_flow(home, "Mine", MINE)
    sup = supervisor()
    for workflow_id in HOT_IDS:
        assert lf(home, "start", "Hot", "--id", workflow_id).returncode == 0
    log = Log()
    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(home, n, began + seconds, log), daemon=True)
               for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 2 * COMMAND_TIMEOUT_S)
    assert not any(t.is_alive() for t in threads), "a client never finished: a command hung"
    stress = time.monotonic() - began

    # Then everything must end: the loops are closed, the waits answered (or already cancelled).
    for workflow_id in HOT_IDS:
        run_lf(home, log, "signal", workflow_id, "close")
    for workflow_id in log.mine:
        run_lf(home, log, "signal", workflow_id, "go", "--data", json.dumps({"nonce": f"end-{workflow_id}"}))
    ids = HOT_IDS + log.mine
    wait_for(lambda: all(history.read(home / "var/workflows" / i / "history.jsonl").records[-1]["type"] in ENDED
                         for i in ids), timeout=120, interval=0.25, what="every workflow to end")
    assert sup.stop() == 0

    records = {i: history.read(home / "var/workflows" / i / "history.jsonl").records for i in ids}  # seq, crc
    received = Counter((i, r["signal"], (r["data"] or {}).get("nonce")) for i, rs in records.items() for r in rs
                       if r["type"] == "SignalReceived")
    wrong = [(nonce, target, received[(target[0], target[1], nonce)]) for nonce, target in log.signals.items()
             if received[(target[0], target[1], nonce)] != 1]
    unhandled = []
    for workflow_id in HOT_IDS:
        rs = records[workflow_id]
        jobs = sum(r["type"] == "SignalReceived" and r["signal"] == "job" for r in rs)
        taken = Counter(r["signal_seq"] for r in rs if r["type"] == "SignalTaken")
        handled = Counter(r["step"] for r in rs if r["type"] == "ActivityCompleted")
        if rs[-1]["type"] == "WorkflowCompleted" and (rs[-1]["result"] != jobs or len(taken) != jobs
                                                      or any(c != 1 for c in list(taken.values()) + list(handled.values()))):
            unhandled.append((workflow_id, jobs, rs[-1]["result"], len(taken)))
    fsck = lf(home, "fsck")
    print(f"\nconcurrency stress: {WORKERS} clients, {stress:.1f}s, {log.commands} commands "
          f"({log.commands / stress:.1f}/s), {len(log.signals)} signals acknowledged, {len(ids)} workflows, "
          f"signals not recorded exactly once {len(wrong)}, problems {len(log.problems)}")

    assert log.problems == [], "\n".join(log.problems[:20])
    assert wrong == [], wrong[:20]
    assert unhandled == [], unhandled
    assert fsck.returncode == 0, fsck.stdout
    assert "Traceback" not in sup.output() and "internal error" not in sup.output()
    assert len(log.signals) > WORKERS  # the clients did get through


def test_two_supervisors_started_at_the_same_instant_exactly_one_runs(home):
    for round_ in range(4):
        logs = [home.parent / f"two-{round_}-{n}.log" for n in (0, 1)]
        handles = [open(path, "w") for path in logs]
        argv = [sys.executable, "-m", "localflow", "--home", str(home), "supervise", "--rescan", "1"]
        processes = [subprocess.Popen(argv, stdout=h, stderr=subprocess.STDOUT, cwd=home) for h in handles]
        try:
            loser = wait_for(lambda: next((p for p in processes if p.poll() is not None), None), timeout=30,
                             what="one of the two to give up")
            winner = processes[1 - processes.index(loser)]
            wait_for(lambda: "supervising" in logs[processes.index(winner)].read_text(), what="the other to run")
            said = logs[processes.index(loser)].read_text()
            assert loser.returncode == 6, said  # refused: another supervisor runs
            assert re.search(r"error: another supervisor holds var/supervisor\.lock \(supervisor pid "
                             rf"{winner.pid}\); only one may run per var/", said), said
            assert "supervising" not in said and "Traceback" not in said
            assert winner.poll() is None
            winner.send_signal(signal.SIGTERM)
            assert winner.wait(timeout=30) == 0
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            for handle in handles:
                handle.close()
