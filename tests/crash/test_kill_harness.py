"""Random kill -9: a real `lf supervise` killed with SIGKILL at random (seeded) moments, and restarted.

Many workflows run meanwhile, a mix of run steps (one leaves a background process behind for
the runner to clean up), retries on durable timers, durable sleeps, waits for signals and a
child flow, started by `lf start` and by drop-folder requests, and signalled by `lf signal`,
from a client thread that knows nothing of the kills. Every command that returned 0 is
logged as acknowledged. After `--kills` kills (default 50) a last supervisor finishes the
work, and the test checks:

- lost 0: every acknowledged start, request and signal is in a history;
- duplicated 0: each step key has one ActivityCompleted, each acknowledged signal one
  SignalReceived;
- orphans 0: no process carrying this home's LF_ATTEMPT_TAG is alive at the end;
- every workflow ends as an uncrashed run would (completed, with the result computed from
  its input and signals), and `lf fsck` finds nothing but leftovers of interrupted writes.

A summary line (kills, workflows, lost, duplicated, orphans, executions per step: the
ActivityStarted count per step key, max and mean) is printed (see it with `pytest -s`)
and written as JSON to $LF_KILL_REPORT if set. LF_KILL_SEED changes the seed.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from conftest import lf, write_flow

from localflow.runner.proctree import attempt_tag
from localflow.store import history

FLOWS = {
    "Chain": r"""flow Chain
  input n = 0
  step a:
    run ["sh", "-c", "sleep 0.2; echo $1", "sh", f"{n}"]
  step b:
    run ["sh", "-c", "sleep 60 </dev/null >/dev/null 2>&1 & sleep 0.3; echo $(( $1 * 2 ))", "sh", f"{a.result}"]
  step c:
    run ["sh", "-c", "sleep 0.1; echo $(( $1 + 1 ))", "sh", f"{b.result}"]
  return [a.result, b.result, c.result]
""",
    "Flaky": r"""flow Flaky
  input n = 0
  step flaky:
    run ["sh", "-c", "sleep 0.1; [ \"$LF_ATTEMPT\" -gt 2 ] || { echo busy >&2; exit 3; }; echo $1", "sh", f"{n}"]
    retry 4 every 200ms backoff 1.5
  return flaky.result
""",
    "Nap": r"""flow Nap
  input n = 0
  step before:
    run ["sh", "-c", "echo $1", "sh", f"{n}"]
  sleep 1s
  step after:
    run ["sh", "-c", "sleep 0.1; echo $(( $1 + 100 ))", "sh", f"{before.result}"]
  return after.result
""",
    "Gate": r"""flow Gate
  input n = 0
  step first:
    wait signal go timeout 10m
  step second:
    wait signal more timeout 10m
  step use:
    run ["sh", "-c", "echo $(( $1 + $2 ))", "sh", f"{first.result.v}", f"{second.result.v}"]
  return use.result
""",
    "Parent": r"""flow Parent
  input n = 0
  step kid:
    flow Kid
    input {"n": n}
  step after:
    run ["sh", "-c", "echo $(( $1 * 10 ))", "sh", f"{kid.result}"]
  return after.result
""",
    "Kid": r"""flow Kid
  input n = 0
  step k:
    run ["sh", "-c", "sleep 0.2; echo $(( $1 + 7 ))", "sh", f"{n}"]
  return k.result
""",
}
STEPS = {"Chain": {"a", "b", "c"}, "Flaky": {"flaky"}, "Nap": {"before", "after"}, "Gate": {"use"},
         "Parent": {"after"}, "Kid": {"k"}}
UNCRASHED_RUNS = {"flaky": 3}  # ActivityStarted per step key in a run without kills (Flaky fails twice on purpose)
MIX = ["Chain", "Flaky", "Nap", "Gate", "Parent", "Chain", "Nap", "Gate", "request"]
DEFAULT_SEED = 20261130
START_EVERY_S = 0.35  # the client starts a workflow this often while the kills go on
STARTS_S = 0.97  # ... for this share of the kill phase (the rest: signals and kills only)
SETTLE_S = 120  # the last supervisor must finish everything within this


def expected_result(flow: str, n: int, signals: dict[str, int]):
    return {"Chain": lambda: [n, 2 * n, 2 * n + 1], "Flaky": lambda: n, "Nap": lambda: n + 100,
            "Gate": lambda: signals.get("go", 0) + signals.get("more", 0), "Parent": lambda: (n + 7) * 10,
            "Kid": lambda: n + 7}[flow]()


class Acks:
    """What the client was told succeeded (exit 0), and what it tried."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.starts: dict[str, tuple[str, int]] = {}  # id -> (flow, n)
        self.requests: dict[str, tuple[str, int]] = {}  # id -> (flow, n), the rename into flows/ done
        self.signals: list[tuple[str, str, str, int]] = []  # (id, name, nonce, v)
        self.refused: list[str] = []  # commands that returned non-zero (allowed: not acknowledged)


class Client(threading.Thread):
    """Starts workflows, drops requests and sends signals on a seeded schedule, retrying what is refused."""

    def __init__(self, home: Path, rng: random.Random, acks: Acks, start_until: float) -> None:
        super().__init__(daemon=True)
        self.home, self.rng, self.acks, self.start_until = home, rng, acks, start_until
        self.queue: list[tuple[float, int, tuple]] = []
        self.counter = 0
        self.error: BaseException | None = None

    def at(self, when: float, *action) -> None:
        self.counter += 1
        heapq.heappush(self.queue, (when, self.counter, action))

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _run(self) -> None:
        number = 0
        next_start = time.monotonic()
        while time.monotonic() < self.start_until or self.queue:
            now = time.monotonic()
            if now >= next_start and now < self.start_until:
                self._start(number, MIX[number % len(MIX)])
                number += 1
                next_start = now + START_EVERY_S
            elif self.queue and self.queue[0][0] <= now:
                _, _, action = heapq.heappop(self.queue)
                self._signal(*action)
            else:
                time.sleep(0.02)

    def _start(self, number: int, kind: str) -> None:
        workflow_id = f"w{number:03d}"
        if kind == "request":
            request = {"flow": "Chain", "input": {"n": number}, "id": workflow_id}
            tmp = self.home / "flows" / f"{workflow_id}.tmp"
            tmp.write_text(json.dumps(request))
            os.rename(tmp, self.home / "flows" / f"{workflow_id}.start.json")
            with self.acks.guard:
                self.acks.requests[workflow_id] = ("Chain", number)
            return
        done = lf(self.home, "start", kind, "--id", workflow_id, "-i", f"n={number}", timeout=60)
        with self.acks.guard:
            if done.returncode == 0:
                self.acks.starts[workflow_id] = (kind, number)
            else:
                self.acks.refused.append(f"start {workflow_id}: {done.stderr.strip()}")
                return
        if kind == "Gate":
            now = time.monotonic()
            self.at(now + self.rng.uniform(0.2, 3.0), workflow_id, "go", number, 0)
            self.at(now + self.rng.uniform(0.2, 3.0), workflow_id, "more", 1000 + number, 0)

    def _signal(self, workflow_id: str, name: str, value: int, tries: int) -> None:
        nonce = f"{workflow_id}-{name}-{tries}"
        data = json.dumps({"v": value, "nonce": nonce})
        done = lf(self.home, "signal", workflow_id, name, "--data", data, timeout=60)
        with self.acks.guard:
            if done.returncode == 0:
                self.acks.signals.append((workflow_id, name, nonce, value))
                return
            self.acks.refused.append(f"signal {workflow_id} {name}: {done.stderr.strip()}")
        if tries < 20:
            self.at(time.monotonic() + 0.3, workflow_id, name, value, tries + 1)


def supervise(home: Path, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "localflow", "--home", str(home), "supervise", "--rescan", "1"],
                            cwd=home, stdout=log, stderr=subprocess.STDOUT)


def records_of(home: Path) -> dict[str, list[dict]]:
    root = home / "var" / "workflows"
    return {p.name: history.read(p / "history.jsonl").records for p in sorted(root.iterdir())
            if (p / "history.jsonl").exists()}


def all_ended(home: Path) -> bool:
    ends = ("WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled", "WorkflowTerminated")
    return all(records and records[-1]["type"] in ends for records in records_of(home).values())


def tagged_processes(home: Path) -> list[int]:
    """Live processes whose environment carries this home's LF_ATTEMPT_TAG (zombies are dead)."""
    prefix = b"LF_ATTEMPT_TAG=" + attempt_tag(home, "x", "y", 1).split(":")[0].encode() + b":"
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[-1].split()[0] in (b"Z", b"X"):
                    continue
            with open(f"/proc/{name}/environ", "rb") as handle:
                if any(entry.startswith(prefix) for entry in handle.read().split(b"\0")):
                    found.append(int(name))
        except (OSError, IndexError):
            continue
    return found


def check(home: Path, acks: Acks) -> dict:
    """Lost, duplicated, wrong endings and executions per step, from the histories alone."""
    all_records = records_of(home)
    lost = [f"start {i}" for i in acks.starts if i not in all_records]
    lost += [f"request {i}" for i in acks.requests if i not in all_records]
    received = Counter()
    for records in all_records.values():
        received.update(r["data"]["nonce"] for r in records if r["type"] == "SignalReceived")
    lost += [f"signal {i} {name} ({nonce})" for i, name, nonce, _ in acks.signals if received[nonce] == 0]
    duplicated = [f"signal {nonce} x{count}" for nonce, count in received.items() if count > 1]
    wrong, started = [], Counter()
    for workflow_id, records in all_records.items():
        completed = Counter(r["step"] for r in records if r["type"] == "ActivityCompleted")
        duplicated += [f"{workflow_id} {step} completed x{count}" for step, count in completed.items() if count > 1]
        started.update((workflow_id, r["step"]) for r in records if r["type"] == "ActivityStarted")
        first = records[0]
        signals = {}
        for r in records:
            if r["type"] == "SignalConsumed":
                taken = next(s for s in records if s["seq"] == r["signal_seq"])
                signals[taken["signal"]] = taken["data"]["v"]
        want = expected_result(first["flow_name"], first["input"]["n"], signals)
        end = records[-1]
        if end["type"] != "WorkflowCompleted" or end["result"] != want or set(completed) != STEPS[first["flow_name"]]:
            wrong.append(f"{workflow_id}: {end['type']} {end.get('result', end.get('error'))!r}, expected {want!r}, "
                         f"steps {sorted(completed)}")
    done_dir = home / "var" / "requests" / "done"
    handled = [p.name for p in done_dir.iterdir()] if done_dir.exists() else []
    lost += [f"request file {i}" for i in acks.requests if not any(n.endswith(f"-{i}.start.json") for n in handled)]
    runs = list(started.values()) or [0]
    extra = sum(count - UNCRASHED_RUNS.get(step, 1) for (_, step), count in started.items())
    return {"workflows": len(all_records), "lost": lost, "duplicated": duplicated, "wrong": wrong,
            "executions_per_step": {"max": max(runs), "mean": round(sum(runs) / len(runs), 3),
                                    "steps": len(started), "histogram": dict(sorted(Counter(runs).items())),
                                    "extra_because_of_kills": extra}}


def test_random_kill9_of_the_supervisor_loses_nothing_and_does_nothing_twice(home, request):
    kills = request.config.getoption("--kills")
    seed = int(os.environ.get("LF_KILL_SEED", DEFAULT_SEED))
    rng = random.Random(seed)
    for name, text in FLOWS.items():
        write_flow(home, name, text)
    began = time.monotonic()
    acks = Acks()
    log_path = home.parent / "supervisors.log"
    delays = [rng.uniform(0.05, 1.3) for _ in range(kills)]
    client = Client(home, random.Random(seed + 1), acks, began + STARTS_S * (sum(delays) + 0.05 * kills))
    client.start()
    last = None
    with open(log_path, "w") as log:
        try:
            for delay in delays:
                process = supervise(home, log)
                time.sleep(delay)
                process.send_signal(signal.SIGKILL)
                process.wait()
            kill_phase = time.monotonic() - began
            ready = log_path.read_text().count("supervising ")
            last = supervise(home, log)
            client.join(timeout=SETTLE_S)
            assert not client.is_alive() and client.error is None, client.error
            deadline = time.monotonic() + SETTLE_S
            while not all_ended(home) and time.monotonic() < deadline:
                time.sleep(0.2)
            settle = time.monotonic() - began - kill_phase
            while log_path.read_text().count("supervising ") == ready and last.poll() is None:
                time.sleep(0.05)  # a SIGTERM before its handlers are in place would not be a clean stop
            last.send_signal(signal.SIGTERM)
            assert last.wait(timeout=30) == 0
        finally:
            if last is not None and last.poll() is None:
                last.kill()
                last.wait()
    time.sleep(0.2)  # the last supervisor's final kills reach their targets
    orphans = tagged_processes(home)
    for pid in orphans:  # never leave them to the rest of the suite
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    found = check(home, acks)
    fsck = json.loads(lf(home, "fsck", "--json").stdout)
    serious = [f for f in fsck["findings"] if f["kind"] != "leftover"]
    report = {"seed": seed, "kills": kills, "workflows": found["workflows"],
              "acknowledged": {"starts": len(acks.starts), "requests": len(acks.requests),
                               "signals": len(acks.signals), "refused": len(acks.refused)},
              "lost": len(found["lost"]), "duplicated": len(found["duplicated"]), "orphans": len(orphans),
              "wrong_endings": len(found["wrong"]), "executions_per_step": found["executions_per_step"],
              "fsck": {"findings": len(fsck["findings"]), "serious": len(serious),
                       "files": [f"{f['file']}: {f['kind']}" for f in fsck["findings"]]},
              "seconds": {"kill_phase": round(kill_phase, 1), "settle": round(settle, 1),
                          "total": round(time.monotonic() - began, 1)}}
    per_step = found["executions_per_step"]
    log_text = log_path.read_text()
    report["recovered"] = {"orphaned_attempts_killed": log_text.count("was orphaned; killed"),
                           "unrecorded_spawns_killed": log_text.count("never recorded; killed"),
                           "attempts_found_gone": log_text.count("was gone, nothing of it left")}
    print(f"\nkill harness: seed {seed}, {kills} kills, {found['workflows']} workflows "
          f"({len(acks.starts)} started, {len(acks.requests)} requests, {len(acks.signals)} signals acknowledged), "
          f"lost {report['lost']}, duplicated {report['duplicated']}, orphans {len(orphans)}, "
          f"wrong endings {report['wrong_endings']}, executions per step max {per_step['max']} "
          f"mean {per_step['mean']} ({per_step['extra_because_of_kills']} extra runs because of kills), "
          f"orphaned attempts killed on restart {report['recovered']['orphaned_attempts_killed']}, "
          f"fsck findings {len(fsck['findings'])} {sorted(Counter(f['kind'] for f in fsck['findings']).items())}, "
          f"{report['seconds']['total']}s (kills {report['seconds']['kill_phase']}s, settle {report['seconds']['settle']}s)")
    if os.environ.get("LF_KILL_REPORT"):
        Path(os.environ["LF_KILL_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")

    assert found["lost"] == [] and found["duplicated"] == [] and orphans == [], (found, orphans)
    assert found["wrong"] == [], found["wrong"]
    assert serious == [], serious
    assert "Traceback" not in log_text and "internal error" not in log_text and "cannot continue" not in log_text
    assert found["workflows"] >= len(acks.starts) + len(acks.requests) > 0
