"""Issue 7's suite: the supervisor end to end, each figure beside a baseline measured in the same run.

Run: ``python benchmarks/bench_supervisor.py`` (about 4-5 minutes), ``--quick`` (under a
minute, small sizes), ``--sizes 100,1000`` (B1's workflow counts), ``--big`` (adds the
10,000 cases of B1 and B5/B6: many more minutes), ``--json-out PATH``. Everything is
written under one ``tempfile.mkdtemp()`` directory, removed at the end; every
``lf supervise`` started is stopped (SIGTERM, then SIGKILL) even on errors.
DBOS rows need the ``bench`` extra (``pip install '.[bench]'``); without it they say n/a.

- B1 throughput: N workflows of 3 ``run ["true"]`` steps, dropped as
  ``flows/*.start.json`` (write ``.tmp``, rename) into a home with one real
  ``lf supervise``; wall time from the first drop to the last "completed" log line;
  supervisor CPU from /proc/<pid>/stat (utime + stime). Baselines: DBOS on SQLite
  (3 no-op steps, and 3 steps each ``subprocess.run(["true"])``; one at a time, and 100
  at a time), and the floor of LocalFlow's own work done by hand in this process, one
  workflow after the other: a crash-safe create (mkdir, O_EXCL create, write, fsync
  file, dir, parent) + 9 appends with fsync + 3 spawns of ``true``.
- B2: per-step cost of ``run ["true"]`` in ``lf run`` of a 50-step flow, minus the
  CLI start-up (``lf --version``), vs a bare ``subprocess.run(["true"])`` loop.
- B3: ``lf list`` (whole process) over 1,000 / 10,000 finished workflows (one real
  workflow, cloned with new ids and recomputed crcs) vs DBOS ``list_workflows`` over
  the same count (rows cloned in SQL) and ``python -c pass``.
- B4: read + fold of a 10,000-event history vs ``json.loads`` of its lines (the
  history is built by bench_history.py's generator).
- B5: with K workflows waiting on ``wait signal go``: ``lf signal`` to a few, time
  from its return (and from the recorded SignalReceived) to the next step's
  ActivityStarted ``ts``; timer lateness (TimerFired ``ts`` - TimerStarted ``fire_at``)
  of ``sleep 1s``. Baselines: a watchdog event + spawn + fsynced append done in this
  process; ``Condition.wait(timeout)`` lateness.
- B6: supervisor start-up (process start to its "supervising" line, and to quiet),
  RSS and CPU% over an idle window, with K waiting + K finished workflows, vs the
  same supervisor on an empty home; CLI start-up ``lf --help`` vs ``python -c pass``
  and ``python -c "import argparse"``.

Ratios are LocalFlow / baseline: above 1 means LocalFlow takes longer (or more).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Union

import localflow
from localflow.core.timefmt import from_iso
from localflow.engine import Engine
from localflow.store import codec

HERE = Path(__file__).resolve().parent
LF = [sys.executable, "-m", "localflow"]
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
NA = "n/a (pip install '.[bench]')"
HAVE_DBOS = importlib.util.find_spec("dbos") is not None

THREE = 'flow Three\n' + "".join(f'  step {s}:\n    run ["true"]\n' for s in "abc")
WAITER = 'flow Waiter\n  step w:\n    wait signal go\n  step after:\n    run ["true"]\n'
SLEEPER = 'flow Sleeper\n  sleep 1s\n  step after:\n    run ["true"]\n'


# --- small helpers ----------------------------------------------------------------

def say(text: str = "") -> None:
    print(text, flush=True)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); with few samples p99 is the maximum."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_cmd(argv: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    # cwd=home: `python -m` puts the cwd first on sys.path; a temp home holds no other localflow
    proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def proc_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process itself, CPU seconds of its waited-for children) from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, (int(fields[13]) + int(fields[14])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_flow(home: Path, name: str, source: str) -> None:
    (home / "flows").mkdir(parents=True, exist_ok=True)
    (home / "flows" / f"{name}.flow").write_text(source)


def read_events(history: Path) -> list[dict]:
    """The complete lines of a history as dicts (no crc check: the supervisor may be appending)."""
    try:
        data = history.read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines() if line.strip()]


def ms_of(value: Union[str, int]) -> int:
    return value if isinstance(value, int) else from_iso(value)


def machine(tmp: Path) -> dict:
    real, best = os.path.realpath(tmp), ("?", "?", "?")
    with open("/proc/mounts") as f:
        for line in f:
            device, mount, fstype = line.split()[:3]
            if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best[1]):
                best = (device, mount, fstype)
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    dbos_version = None
    if HAVE_DBOS:
        from importlib.metadata import version
        dbos_version = version("dbos")
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "cpu": model,
            "python": sys.version.split()[0], "kernel": platform.release(),
            "tmp": str(tmp), "tmp_fs": f"{best[2]} on {best[0]} (mounted at {best[1]})",
            "localflow": str(Path(localflow.__file__).parent), "dbos": dbos_version,
            "date": time.strftime("%Y-%m-%d %H:%M")}


# --- results --------------------------------------------------------------------

class Results:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.details: dict[str, Any] = {}

    def add(self, group: str, figure: str, lf_value: Union[float, None], lf_text: str,
            base_value: Union[float, None], base_text: str) -> None:
        # no ratio for a zero baseline (below /proc's resolution) or a negative figure (see B5)
        ratio = lf_value / base_value if lf_value is not None and base_value and lf_value > 0 and base_value > 0 \
            else None
        self.rows.append({"group": group, "figure": figure, "localflow": lf_text, "baseline": base_text,
                          "localflow_value": lf_value, "baseline_value": base_value, "ratio": ratio})
        say(f"   -> {figure}: {lf_text} | {base_text} | {fmt_ratio(ratio)}")

    def table(self) -> str:
        order = {g: i for i, g in enumerate(["B1", "B2", "B3", "B4", "B5", "B6"])}
        rows = sorted(self.rows, key=lambda r: order.get(r["group"], 9))  # stable within a group
        cells = [("figure", "LocalFlow", "baseline", "ratio")] + [
            (f"{r['group']} {r['figure']}", r["localflow"], r["baseline"], fmt_ratio(r["ratio"])) for r in rows]
        widths = [max(len(c[i]) for c in cells) for i in range(4)]
        lines = []
        for n, c in enumerate(cells):
            lines.append("| " + " | ".join(c[i].ljust(widths[i]) for i in range(4)) + " |")
            if n == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)


def fmt_ratio(ratio: Union[float, None]) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def fmt_ms(seconds: Union[float, None]) -> str:
    if seconds is None:
        return "never"
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 1000 else f"{value:,.0f} ms"


# --- a real supervisor process ----------------------------------------------------

LIVE: list["Supervisor"] = []


class Supervisor:
    """One `lf supervise` process; its stdout is read on a thread, every line time-stamped."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: Union[subprocess.Popen, None] = None
        self.tail: deque[str] = deque(maxlen=40)
        self.completed: dict[str, float] = {}  # workflow id -> perf_counter when its completion was logged
        self.failed: list[str] = []
        self.ready_at: Union[float, None] = None
        self.spawned_at = 0.0
        self._cond = threading.Condition()
        self._reader: Union[threading.Thread, None] = None

    def start(self) -> "Supervisor":
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(LF + ["--home", str(self.home), "supervise"], cwd=self.home,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        LIVE.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.perf_counter()
            self.tail.append(line.rstrip("\n"))
            parts = line.rstrip("\n").split("  ", 2)  # "HH:MM:SS  <id>  <what happened>"
            with self._cond:
                if self.ready_at is None and len(parts) >= 2 and parts[1].startswith("supervising "):
                    self.ready_at = now
                elif len(parts) == 3 and parts[2].startswith("completed -> "):
                    self.completed.setdefault(parts[1], now)
                elif len(parts) == 3 and parts[2].startswith("failed: "):
                    self.failed.append(line.strip())
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from spawning the process to its 'supervising' line."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.ready_at is None:
                self._check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError("the supervisor never said 'supervising':\n" + self.log_tail())
                self._cond.wait(0.2)
            return self.ready_at - self.spawned_at

    def wait_completed(self, count: int, timeout: float, fallback: Callable[[], int]) -> float:
        """perf_counter of the count-th completion; polls ``fallback`` (histories) if the log says nothing."""
        deadline, last_progress, last_seen = time.monotonic() + timeout, time.monotonic(), 0
        with self._cond:
            while len(self.completed) < count:
                self._check_alive()
                if self.failed:
                    raise RuntimeError(f"a workflow failed: {self.failed[0]}")
                if len(self.completed) != last_seen:
                    last_seen, last_progress = len(self.completed), time.monotonic()
                elif time.monotonic() - last_progress > 10 and fallback() >= count:
                    say("   (the log stopped saying 'completed'; end time taken from the histories' poll)")
                    return time.perf_counter()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(self.completed)} of {count} completed in {timeout:.0f} s:\n"
                                       + self.log_tail())
                self._cond.wait(0.5)
            return sorted(self.completed.values())[count - 1]

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the supervisor exited with {self.proc.returncode}:\n" + self.log_tail())

    def log_tail(self) -> str:
        return "\n".join(f"     | {line}" for line in self.tail)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            if self._reader is not None:
                self._reader.join(timeout=5)
            if self in LIVE:
                LIVE.remove(self)

    def __enter__(self) -> "Supervisor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- DBOS (in its own process: benchmarks/dbos_baseline.py) ------------------------

def dbos(tmp: Path, mode: str, *args: str, timeout: float = 900) -> Union[dict, None]:
    if not HAVE_DBOS:
        return None
    out = tmp / f"dbos-{os.urandom(4).hex()}.json"
    argv = [PY, str(HERE / "dbos_baseline.py"), mode, "--out", str(out), *args]
    proc = subprocess.run(argv, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.exists():
        say(f"   DBOS {mode} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}")
        return None
    return json.loads(out.read_text())


# --- generating workflows fast: one real history, cloned with new ids -------------

def clone_workflows(template_dir: Path, template_id: str, workflows_dir: Path, new_ids: list[str]) -> None:
    """Copy a workflow's history (and an empty lock) under new ids, rewriting the id and each line's crc."""
    lines = template_dir.joinpath("history.jsonl").read_bytes().splitlines()
    old = template_id.encode()
    for new_id in new_ids:
        body = b"".join(codec.encode(json.loads(line.replace(old, new_id.encode()))) if old in line
                        else line + b"\n" for line in lines)
        target = workflows_dir / new_id
        target.mkdir(mode=0o700)
        fd = os.open(target / "history.jsonl", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        os.close(os.open(target / "lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Templates:
    """Real workflows to clone: a finished 3-step one (run by `lf run`) and one waiting for a signal."""

    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "templates"
        for name, source in (("Three", THREE), ("Waiter", WAITER), ("Sleeper", SLEEPER)):
            write_flow(self.home, name, source)
        run_cmd(LF + ["--home", str(self.home), "run", "Three", "--id", "TplThree-0000"], self.home)
        engine = Engine(self.home)
        engine.start("Waiter", {}, workflow_id="TplWaiter-0000")
        engine.transact("TplWaiter-0000")  # whatever the waiting state records (today: nothing)
        self.finished = ("TplThree-0000", engine.paths.workflow_dir("TplThree-0000"))
        self.waiting = ("TplWaiter-0000", engine.paths.workflow_dir("TplWaiter-0000"))
        assert engine.load("TplThree-0000").state.status == "completed"

    def populate(self, home: Path, kind: str, ids: list[str]) -> None:
        Engine(home).ensure_layout()
        template_id, template_dir = self.finished if kind == "finished" else self.waiting
        clone_workflows(template_dir, template_id, home / "var" / "workflows", ids)


# --- B1: throughput ---------------------------------------------------------------

def floor_run(root: Path, n: int) -> float:
    """LocalFlow's own work done by hand, one workflow after the other: see the module doc."""
    root.mkdir()
    created = b'{"seq":1,"type":"WorkflowStarted","flow":"' + b"x" * 700 + b'"}\n'
    line = b'{"seq":2,"ts":"2026-11-30T00:23:05.879Z","type":"ActivityScheduled","step":"a","attempt":1,' \
           b'"argv":["true"],"timeout_ms":600000,"frame":"root","undo":null,"crc":"bda12b19"}\n'
    t0 = time.perf_counter()
    for i in range(n):
        directory = root / f"wf-{i}"
        os.mkdir(directory, 0o700)
        fd = os.open(directory / "history.jsonl", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            os.write(fd, created)
            os.fsync(fd)
            fsync_dir(directory)
            fsync_dir(root)
            for _ in range(3):  # per step: scheduled, (spawn) started, completed
                os.write(fd, line)
                os.fsync(fd)
                subprocess.run(["true"], check=True)
                for _ in range(2):
                    os.write(fd, line)
                    os.fsync(fd)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(root, ignore_errors=True)
    return elapsed


def completed_in_histories(home: Path) -> int:
    count = 0
    for history in (home / "var" / "workflows").glob("*/history.jsonl"):
        with open(history, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 300))
            count += b'"type":"WorkflowCompleted"' in f.read()
    return count


def lf_throughput(tmp: Path, n: int) -> dict:
    home = tmp / f"b1-{n}"
    write_flow(home, "Three", THREE)
    flows = home / "flows"
    request = json.dumps({"flow": "Three", "input": {}})
    try:
        with Supervisor(home) as sup:
            sup.wait_ready()
            cpu0, child0 = proc_cpu(sup.pid)
            t0 = time.perf_counter()
            for i in range(n):
                tmp_file = flows / f"req-{i:06d}.tmp"
                tmp_file.write_text(request)
                os.rename(tmp_file, flows / f"req-{i:06d}.start.json")
            dropped = time.perf_counter() - t0
            t_end = sup.wait_completed(n, timeout=120 + n * 1.0, fallback=lambda: completed_in_histories(home))
            cpu1, child1 = proc_cpu(sup.pid)
            peak_rss = proc_status_kb(sup.pid, "VmHWM")
        done = completed_in_histories(home)
        if done != n:
            raise RuntimeError(f"{done} of {n} histories end with WorkflowCompleted")
        latencies, retried = [], 0
        for history in (home / "var" / "workflows").glob("*/history.jsonl"):
            events = read_events(history)
            latencies.append(ms_of(events[-1]["ts"]) - ms_of(events[0]["ts"]))
            retried += any(e.get("attempt", 1) > 1 for e in events)
        if retried:
            say(f"   note: {retried} workflows ran a step more than once (attempt > 1)")
        return {"n": n, "wall_s": t_end - t0, "drop_s": dropped, "cpu_s": cpu1 - cpu0, "retried": retried,
                "children_cpu_s": child1 - child0, "peak_rss_mb": peak_rss / 1024,
                "latency_p50_ms": pct(latencies, 50), "latency_max_ms": max(latencies)}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def bench_b1(tmp: Path, results: Results, sizes: list[int]) -> None:
    say("\nB1. throughput: N workflows of 3 `run [\"true\"]` steps through the drop folder, one `lf supervise`")
    for n in sizes:
        say(f"  N = {n:,}")
        floor = floor_run(tmp / f"floor-{n}", n)
        say(f"   floor (create + 9 fsynced appends + 3 spawns, one workflow after the other): {floor:.2f} s")
        base: dict[tuple[str, int], Union[dict, None]] = {}
        for steps in ("noop", "true"):
            for batch in (1, 100):
                r = dbos(tmp, "throughput", "--db", str(tmp / f"dbos-b1-{n}-{steps}-{batch}.sqlite"),
                         "--n", str(n), "--batch", str(batch), "--steps", steps)
                base[(steps, batch)] = r
                if r:
                    say(f"   DBOS, steps {steps}, {batch} at a time: {r['wall_s']:.2f} s, CPU {r['cpu_s']:.2f} s "
                        f"(+ children {r['children_cpu_s']:.2f} s)")
                    results.details.setdefault("dbos_sqlite", {k: r[k] for k in
                                                               ("journal_mode", "synchronous", "dbos_version")})
        lf = lf_throughput(tmp, n)
        results.details[f"b1_{n}"] = {"localflow": lf, "floor_s": floor,
                                      "dbos": {f"{s}-{b}": v for (s, b), v in base.items()}}
        say(f"   LocalFlow: {lf['wall_s']:.2f} s (drops written in {lf['drop_s']:.2f} s), supervisor CPU "
            f"{lf['cpu_s']:.2f} s (+ children {lf['children_cpu_s']:.2f} s), peak RSS {lf['peak_rss_mb']:.0f} MB; "
            f"per-workflow latency p50 {lf['latency_p50_ms'] / 1000:.1f} s, max {lf['latency_max_ms'] / 1000:.1f} s")
        per_wf = lf["wall_s"] / n
        lf_text = f"{per_wf * 1e3:.2f} ms/wf ({n / lf['wall_s']:.0f} wf/s)"
        for (steps, batch), label in ((("noop", 1), "DBOS no-op steps, sequential"),
                                      (("noop", 100), "DBOS no-op steps, 100 at a time"),
                                      (("true", 1), "DBOS `true` steps, sequential"),
                                      (("true", 100), "DBOS `true` steps, 100 at a time")):
            r = base[(steps, batch)]
            results.add("B1", f"N={n:,}: wall per workflow vs {label}", per_wf, lf_text,
                        r["wall_s"] / n if r else None,
                        f"{r['wall_s'] / n * 1e3:.2f} ms/wf ({n / r['wall_s']:.0f} wf/s)" if r else NA)
        results.add("B1", f"N={n:,}: wall per workflow vs floor of our work", per_wf, lf_text,
                    floor / n, f"{floor / n * 1e3:.2f} ms/wf ({n / floor:.0f} wf/s)")
        r = base[("true", 100)]
        results.add("B1", f"N={n:,}: CPU per workflow (supervisor / DBOS process, `true`, 100 at a time)",
                    lf["cpu_s"] / n, f"{lf['cpu_s'] / n * 1e3:.2f} CPU-ms/wf",
                    r["cpu_s"] / n if r else None, f"{r['cpu_s'] / n * 1e3:.2f} CPU-ms/wf" if r else NA)


# --- B2: one step of run ["true"] -------------------------------------------------

def bench_b2(tmp: Path, results: Results, rounds: int, steps: int = 50) -> None:
    say(f"\nB2. per-step cost of `run [\"true\"]`: `lf run` of {steps} steps minus start-up, vs subprocess.run loop")
    home = tmp / "b2"
    write_flow(home, "Fifty", "flow Fifty\n" + "".join(f'  step s{i}:\n    run ["true"]\n' for i in range(steps)))
    run_cmd(LF + ["--version"], home)  # warm the .pyc files and the page cache
    rows = []
    for r in range(rounds):
        base = timed(lambda: [subprocess.run(["true"], check=True) for _ in range(steps)])
        start = timed(lambda: run_cmd(LF + ["--version"], home))
        run = timed(lambda: run_cmd(LF + ["--home", str(home), "run", "Fifty", "--id", f"b2-{r}"], home))
        rows.append((base, start, run))
        say(f"   round {r + 1}: loop {base * 1e3:.1f} ms, start-up {start * 1e3:.0f} ms, lf run {run * 1e3:.0f} ms")
    base, start, run = (statistics.median(c) for c in zip(*rows))
    per_step, base_step = (run - start) / steps, base / steps
    results.details["b2"] = {"steps": steps, "rounds": rows}
    results.add("B2", f"one `run [\"true\"]` step (lf run of {steps}, minus start-up)", per_step,
                fmt_ms(per_step) + "/step", base_step, f"{fmt_ms(base_step)}/step subprocess.run")
    shutil.rmtree(home, ignore_errors=True)


# --- B3: lf list ------------------------------------------------------------------

def median_process(argv: list[str], cwd: Path, repeats: int) -> float:
    return statistics.median(timed(lambda: run_cmd(argv, cwd)) for _ in range(repeats))


def bench_b3(tmp: Path, results: Results, templates: Templates, counts: list[int], repeats: int) -> None:
    say("\nB3. `lf list` (whole process) over N finished workflows (cloned), vs DBOS list_workflows and python -c pass")
    home = tmp / "b3"
    write_flow(home, "Three", THREE)
    have = 0
    for n in counts:
        t0 = time.perf_counter()
        templates.populate(home, "finished", [f"Three-copy-{i:06d}" for i in range(have, n)])
        have = n
        say(f"  N = {n:,} (cloned in {time.perf_counter() - t0:.1f} s)")
        lf_list = LF + ["--home", str(home), "list"]
        cold_proc = None

        def cold() -> None:
            nonlocal cold_proc
            cold_proc = run_cmd(lf_list + ["--limit", "50"], home)

        cold_s = timed(cold)
        assert cold_proc is not None
        if "warning" in cold_proc.stderr:
            raise RuntimeError(f"lf list warned:\n{cold_proc.stderr[-2000:]}")
        rows = json.loads(run_cmd(lf_list + ["--json", "--limit", "0"], home).stdout)
        if len(rows) != n or any(row.get("status") != "completed" for row in rows):
            raise RuntimeError(f"lf list --json --limit 0 gave {len(rows)} rows, expected {n} completed")
        warm50 = median_process(lf_list + ["--limit", "50"], home, repeats)
        json50 = median_process(lf_list + ["--json"], home, repeats)
        json_all = median_process(lf_list + ["--json", "--limit", "0"], home, repeats)
        py_pass = median_process([PY, "-c", "pass"], home, repeats)
        d = dbos(tmp, "list", "--db", str(tmp / f"dbos-b3-{n}.sqlite"), "--n", str(n), "--repeats", str(repeats))
        dbos_proc = None
        if d:
            dbos_proc = median_process([PY, str(HERE / "dbos_baseline.py"), "listproc", "--db",
                                        str(tmp / f"dbos-b3-{n}.sqlite"), "--out", str(tmp / "listproc.json")],
                                       tmp, repeats)
        results.details[f"b3_{n}"] = {"cold_limit50_s": cold_s, "warm_limit50_s": warm50, "json_50_s": json50,
                                      "json_all_s": json_all, "python_pass_s": py_pass, "dbos": d,
                                      "dbos_process_s": dbos_proc}
        say(f"   lf list --limit 50: first {fmt_ms(cold_s)}, then {fmt_ms(warm50)}; --json {fmt_ms(json50)}; "
            f"--json --limit 0 {fmt_ms(json_all)}; python -c pass {fmt_ms(py_pass)}")
        if d:
            say(f"   DBOS list_workflows(): {fmt_ms(d['list_all_s'])}, (limit=50): {fmt_ms(d['list_50_s'])}, "
                f"whole process (import, launch, list 50): {fmt_ms(dbos_proc)}")
        label = f"N={n:,}: "
        results.add("B3", label + "lf list --limit 50, first run (no summaries yet)", cold_s, fmt_ms(cold_s),
                    d["list_50_s"] if d else None, f"{fmt_ms(d['list_50_s'])} DBOS list_workflows(limit=50)" if d else NA)
        results.add("B3", label + "lf list --limit 50, warm", warm50, fmt_ms(warm50),
                    d["list_50_s"] if d else None, f"{fmt_ms(d['list_50_s'])} DBOS list_workflows(limit=50)" if d else NA)
        results.add("B3", label + "lf list --limit 50, warm, vs a whole DBOS process", warm50, fmt_ms(warm50),
                    dbos_proc, f"{fmt_ms(dbos_proc)} DBOS process: import, launch, list 50" if dbos_proc else NA)
        results.add("B3", label + "lf list --json --limit 0 (all rows), warm", json_all, fmt_ms(json_all),
                    d["list_all_s"] if d else None, f"{fmt_ms(d['list_all_s'])} DBOS list_workflows() (all)" if d else NA)
        results.add("B3", label + "lf list --json (50 rows), warm", json50, fmt_ms(json50),
                    py_pass, f"{fmt_ms(py_pass)} python -c pass")
    shutil.rmtree(home, ignore_errors=True)


# --- B4: read + fold (bench_history.py's generator) -------------------------------

def bench_b4(tmp: Path, results: Results, target: int, repeats: int) -> None:
    sys.path.insert(0, str(HERE))
    import bench_history as bh  # the 10,000-event history generator and its timer, not duplicated here

    say(f"\nB4. read + fold of a ~{target:,}-event history (bench_history.py's generator) vs json.loads of its lines")
    engine = Engine(tmp / "b4")
    bh.write_history(engine, "long", bh.build_events(bh.flow_source(bh.STEPS), "long", target))
    path = engine.paths.history("long")
    events = path.read_bytes().count(b"\n")

    def baseline() -> None:
        with open(path, "rb") as f:
            for line in f.read().splitlines():
                json.loads(line)

    t_base = bh.median_time(repeats, baseline)
    t_load = bh.median_time(repeats, lambda: engine.load("long"))
    results.details["b4"] = {"events": events, "load_s": t_load, "json_s": t_base}
    results.add("B4", f"read + fold {events:,} events (Engine.load)", t_load,
                f"{fmt_ms(t_load)} ({events / t_load:,.0f} ev/s)", t_base,
                f"{fmt_ms(t_base)} json.loads ({events / t_base:,.0f} ev/s)")
    shutil.rmtree(tmp / "b4", ignore_errors=True)


# --- B5 + B6: a supervisor with K waiting and K finished workflows ----------------

def wait_quiet(pid: int, timeout: float, window_s: float = 0.5, max_ticks: int = 2) -> Union[float, None]:
    """perf_counter when the process first used at most ``max_ticks`` clock ticks over ``window_s``; None if never."""
    samples: deque[tuple[float, float]] = deque()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now, cpu = time.perf_counter(), proc_cpu(pid)[0]
        samples.append((now, cpu))
        while samples and now - samples[0][0] > window_s + 1e-3:
            samples.popleft()
        if now - samples[0][0] >= window_s - 0.06 and (cpu - samples[0][1]) * CLK_TCK <= max_ticks:
            return samples[0][0]
        time.sleep(0.05)
    return None


def idle_window(pid: int, seconds: float) -> dict:
    cpu0, t0, rss = proc_cpu(pid)[0], time.perf_counter(), []
    while time.perf_counter() - t0 < seconds:
        rss.append(proc_status_kb(pid, "VmRSS"))
        time.sleep(0.25)
    cpu1, t1 = proc_cpu(pid)[0], time.perf_counter()
    rss.append(proc_status_kb(pid, "VmRSS"))
    return {"cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "rss_mb": max(rss) / 1024, "seconds": t1 - t0}


def supervisor_session(home: Path, idle_s: float, quiet_timeout: float) -> tuple[Supervisor, dict]:
    sup = Supervisor(home).start()
    try:
        ready = sup.wait_ready()
        quiet_at = wait_quiet(sup.pid, quiet_timeout)
        quiet = None if quiet_at is None else quiet_at - sup.spawned_at
        time.sleep(0.5)
        idle = idle_window(sup.pid, idle_s)
    except BaseException:
        sup.stop()
        raise
    return sup, {"ready_s": ready, "quiet_s": quiet, **idle}


def wait_for_event(history: Path, match: Callable[[dict], bool], timeout: float = 30.0) -> Union[dict, None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in read_events(history):
            if match(event):
                return event
        time.sleep(0.01)  # the ts read from the history is what counts, not when we look
    return None


def signal_latencies(home: Path, ids: list[str]) -> tuple[list[float], list[float]]:
    from_return, from_record = [], []
    for workflow_id in ids:
        run_cmd(LF + ["--home", str(home), "signal", workflow_id, "go"], home)
        returned_ms = time.time() * 1000
        history = home / "var" / "workflows" / workflow_id / "history.jsonl"
        started = wait_for_event(history, lambda e: e["type"] == "ActivityStarted" and e.get("step") == "after")
        if started is None:
            raise RuntimeError(f"{workflow_id}: no ActivityStarted of 'after' within 30 s of the signal")
        received = next(e for e in read_events(history) if e["type"] == "SignalReceived")
        from_return.append(ms_of(started["ts"]) - returned_ms)
        from_record.append(ms_of(started["ts"]) - ms_of(received["ts"]))
    return from_return, from_record


def timer_lateness(home: Path, count: int) -> list[float]:
    engine, ids = Engine(home), []
    for _ in range(count):  # what `lf start Sleeper` does, without a process each
        ids.append(engine.start("Sleeper", {}))
        time.sleep(0.05)
    late = []
    for workflow_id in ids:
        history = engine.paths.history(workflow_id)
        fired = wait_for_event(history, lambda e: e["type"] == "TimerFired", timeout=60)
        if fired is None:
            raise RuntimeError(f"{workflow_id}: the 1 s timer did not fire within 60 s")
        started = next(e for e in read_events(history) if e["type"] == "TimerStarted")
        late.append(ms_of(fired["ts"]) - ms_of(started["fire_at"]))
    return late


def reaction_floor(tmp: Path, samples: int) -> list[float]:
    """ms from an fsynced append in a watched directory to: watchdog event seen + `true` spawned + an fsynced append."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    watched = tmp / "floor-watch"
    watched.mkdir()
    seen = threading.Event()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:  # noqa: ANN001
            if event.event_type in ("modified", "closed") and not event.is_directory:
                seen.set()

    observer = Observer()
    observer.schedule(Handler(), str(watched), recursive=False)
    observer.start()
    try:
        path, out = watched / "history.jsonl", []
        line = b'{"seq":2,"type":"SignalReceived","signal":"go","data":null,"crc":"00000000"}\n'
        for _ in range(samples):
            time.sleep(0.05)
            seen.clear()
            t0 = time.perf_counter()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(fd, line)
            os.fsync(fd)
            os.close(fd)
            if not seen.wait(5):
                raise RuntimeError("watchdog saw no event")
            child = subprocess.Popen(["true"])
            fd = os.open(tmp / "floor-other.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(fd, line)
            os.fsync(fd)
            os.close(fd)
            out.append((time.perf_counter() - t0) * 1000)
            child.wait()
        return out
    finally:
        observer.stop()
        observer.join(5)


def condition_lateness(samples: int, wait_s: float = 0.2) -> list[float]:
    cond, out = threading.Condition(), []
    for _ in range(samples):
        with cond:
            t0 = time.perf_counter()
            cond.wait(wait_s)
            out.append((time.perf_counter() - t0 - wait_s) * 1000)
    return out


def rss_of_bare_python() -> float:
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(3)"])
    try:
        time.sleep(1.0)
        return proc_status_kb(proc.pid, "VmRSS") / 1024
    finally:
        proc.kill()
        proc.wait()


def p50_p99(values: list[float]) -> str:
    return f"p50 {pct(values, 50):.1f} ms, p99 {pct(values, 99):.1f} ms"


def bench_b5_b6(tmp: Path, results: Results, templates: Templates, ks: list[int], idle_s: float,
                quiet_timeout: float, n_signals: int, n_timers: int, cli_rounds: int) -> None:
    say(f"\nB6. supervisor start-up, idle RSS and CPU% over {idle_s:.0f} s (default rescan), vs an empty home")
    empty = tmp / "b6-empty"
    for name, source in (("Waiter", WAITER), ("Sleeper", SLEEPER), ("Three", THREE)):
        write_flow(empty, name, source)
    sup, base = supervisor_session(empty, idle_s, quiet_timeout)
    sup.stop()
    bare_rss = rss_of_bare_python()
    results.details["b6_empty"] = {**base, "bare_python_rss_mb": bare_rss}
    say(f"   empty home: 'supervising' after {fmt_ms(base['ready_s'])}, quiet after {fmt_ms(base['quiet_s'])}, "
        f"idle CPU {base['cpu_pct']:.2f}%, RSS {base['rss_mb']:.1f} MB (bare python: {bare_rss:.1f} MB)")
    results.add("B6", "supervisor RSS, empty home, idle", base["rss_mb"], f"{base['rss_mb']:.1f} MB",
                bare_rss, f"{bare_rss:.1f} MB python -c 'sleep'")

    say("   baselines for B5: watchdog event + spawn + fsynced append; Condition.wait(timeout) lateness")
    floor = reaction_floor(tmp, max(n_signals, 10))
    cond_late = condition_lateness(max(n_timers, 10))
    say(f"   reaction floor {p50_p99(floor)}; Condition.wait lateness {p50_p99(cond_late)}")
    results.details["b5_floor_ms"] = floor
    results.details["b5_condition_lateness_ms"] = cond_late

    for k in ks:
        say(f"  K = {k:,}: {k:,} workflows waiting on `wait signal go` + {k:,} finished")
        home = tmp / f"b5-{k}"
        for name, source in (("Waiter", WAITER), ("Sleeper", SLEEPER), ("Three", THREE)):
            write_flow(home, name, source)
        waiting = [f"Waiter-copy-{i:06d}" for i in range(k)]
        templates.populate(home, "waiting", waiting)
        templates.populate(home, "finished", [f"Three-copy-{i:06d}" for i in range(k)])
        sup, idle = supervisor_session(home, idle_s, quiet_timeout)
        try:
            say(f"   'supervising' after {fmt_ms(idle['ready_s'])}, quiet after {fmt_ms(idle['quiet_s'])}; idle CPU "
                f"{idle['cpu_pct']:.2f}%, RSS {idle['rss_mb']:.1f} MB")
            step = max(1, k // n_signals)
            chosen = waiting[::step][:n_signals]
            from_return, from_record = signal_latencies(home, chosen)
            say(f"   signal -> ActivityStarted: from `lf signal`'s return {p50_p99(from_return)}; "
                f"from SignalReceived {p50_p99(from_record)} ({len(chosen)} signals)")
            late = timer_lateness(home, n_timers)
            say(f"   timer lateness (sleep 1s): {p50_p99(late)} ({len(late)} timers)")
        finally:
            sup.stop()
        results.details[f"b5_b6_{k}"] = {**idle, "signal_from_return_ms": from_return,
                                         "signal_from_record_ms": from_record, "timer_lateness_ms": late}
        label = f"K={k:,}: "
        for q in (50, 99):
            value = pct(from_return, q)
            results.add("B5", label + f"signal -> next ActivityStarted, from lf signal's return, p{q}",
                        value, f"{value:.1f} ms" + (" (before lf signal exited)" if value < 0 else ""), pct(floor, q),
                        f"{pct(floor, q):.2f} ms event+spawn+fsync")
        for q in (50, 99):
            results.add("B5", label + f"signal -> next ActivityStarted, from SignalReceived ts, p{q}",
                        pct(from_record, q), f"{pct(from_record, q):.1f} ms", pct(floor, q),
                        f"{pct(floor, q):.2f} ms event+spawn+fsync")
        for q in (50, 99):
            results.add("B5", label + f"timer lateness (sleep 1s), p{q}", pct(late, q), f"{pct(late, q):.1f} ms",
                        pct(cond_late, q), f"{pct(cond_late, q):.2f} ms Condition.wait")
        results.add("B6", label + "start-up to 'supervising'", idle["ready_s"], fmt_ms(idle["ready_s"]),
                    base["ready_s"], f"{fmt_ms(base['ready_s'])} empty home")
        results.add("B6", label + "start-up until quiet (<=2 ticks in 0.5 s)", idle["quiet_s"],
                    fmt_ms(idle["quiet_s"]) if idle["quiet_s"] is not None else f"not within {quiet_timeout:.0f} s",
                    base["quiet_s"], f"{fmt_ms(base['quiet_s'])} empty home")
        results.add("B6", label + f"idle RSS (max over {idle_s:.0f} s)", idle["rss_mb"], f"{idle['rss_mb']:.1f} MB",
                    base["rss_mb"], f"{base['rss_mb']:.1f} MB empty home")
        results.add("B6", label + f"idle CPU over {idle_s:.0f} s", idle["cpu_pct"], f"{idle['cpu_pct']:.2f}%",
                    base["cpu_pct"], f"{base['cpu_pct']:.2f}% empty home")
        shutil.rmtree(home, ignore_errors=True)

    say("\nB6. CLI start-up: lf --help vs python -c pass and python -c 'import argparse'")
    times: dict[str, list[float]] = {"lf": [], "pass": [], "argparse": []}
    for _ in range(cli_rounds):
        times["pass"].append(timed(lambda: run_cmd([PY, "-c", "pass"], tmp)))
        times["argparse"].append(timed(lambda: run_cmd([PY, "-c", "import argparse"], tmp)))
        times["lf"].append(timed(lambda: run_cmd(LF + ["--help"], tmp)))
    lf_help, py_pass, py_argparse = (statistics.median(times[k]) for k in ("lf", "pass", "argparse"))
    results.details["b6_cli"] = times
    results.add("B6", "lf --help (whole process)", lf_help, fmt_ms(lf_help), py_pass, f"{fmt_ms(py_pass)} python -c pass")
    results.add("B6", "lf --help (whole process)", lf_help, fmt_ms(lf_help), py_argparse,
                f"{fmt_ms(py_argparse)} python -c 'import argparse'")


# --- main -------------------------------------------------------------------------

def int_list(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short idle windows (under a minute)")
    parser.add_argument("--big", action="store_true", help="add the 10,000-workflow cases of B1 and B5/B6 (slow)")
    parser.add_argument("--sizes", type=int_list, help="B1 workflow counts (default 100,1000; --quick 30)")
    parser.add_argument("--list-sizes", type=int_list, help="B3 workflow counts (default 1000,10000; --quick 300)")
    parser.add_argument("--waiting", type=int_list, help="B5/B6 K values (default 10,1000; --quick 10)")
    parser.add_argument("--idle", type=float, help="B6 idle window in seconds (default 10; --quick 3)")
    parser.add_argument("--only", type=lambda s: {p.strip().upper() for p in s.split(",")},
                        help="run only these, e.g. B1,B3 (B5 and B6 run together)")
    parser.add_argument("--json-out", type=Path, help="also write every figure as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = parser.parse_args()

    quick = args.quick
    sizes = args.sizes or ([30] if quick else [100, 1000] + ([10_000] if args.big else []))
    list_sizes = args.list_sizes or ([300] if quick else [1000, 10_000])
    ks = args.waiting or ([10] if quick else [10, 1000] + ([10_000] if args.big else []))
    idle_s = args.idle or (3.0 if quick else 10.0)
    only = args.only or {"B1", "B2", "B3", "B4", "B5", "B6"}

    def handle_term(signum, frame):  # noqa: ARG001: run the finally blocks (stop supervisors) on SIGTERM
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handle_term)
    tmp = Path(tempfile.mkdtemp(prefix="lf-bench-supervisor-"))
    results = Results()
    info = machine(tmp)
    results.details["machine"] = info
    say(f"bench_supervisor: {info['date']}, {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
        f"Linux {info['kernel']}\n  tmp {tmp}: {info['tmp_fs']}\n  localflow from {info['localflow']}; "
        f"DBOS {info['dbos'] or NA}")
    started = time.perf_counter()
    try:
        run_cmd(LF + ["--version"], tmp)  # warm the .pyc files
        templates = Templates(tmp) if only & {"B3", "B5", "B6"} else None
        if "B2" in only:
            bench_b2(tmp, results, rounds=1 if quick else 3)
        if "B4" in only:
            bench_b4(tmp, results, target=2000 if quick else 10_000, repeats=3 if quick else 5)
        if "B3" in only:
            bench_b3(tmp, results, templates, list_sizes, repeats=1 if quick else 3)
        if only & {"B5", "B6"}:
            bench_b5_b6(tmp, results, templates, ks, idle_s, quiet_timeout=8 if quick else 15,
                    n_signals=5 if quick else 10,
                        n_timers=5 if quick else 20, cli_rounds=3 if quick else 5)
        if "B1" in only:
            bench_b1(tmp, results, sizes)
    finally:
        for sup in list(LIVE):
            sup.stop()
        if args.keep:
            say(f"\n(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    dbos_sql = results.details.get("dbos_sqlite")
    say(f"\n=== bench_supervisor results ({time.perf_counter() - started:.0f} s) ===")
    say(f"machine: nproc {info['nproc']}, {info['cpu']}, Python {info['python']}, Linux {info['kernel']}, "
        f"tmp dir on {info['tmp_fs']}")
    say("fsync: LocalFlow fsyncs every history append (one write + fsync per batch of events); a new workflow "
        "= file + dir + parent fsyncs, renamed into place + fsync of workflows/; a request = claimed by rename "
        "and later moved to done/, each move fsyncing both directories")
    say("       DBOS " + (f"{dbos_sql['dbos_version']} on SQLite: journal_mode={dbos_sql['journal_mode']}, "
                          f"synchronous={dbos_sql['synchronous']} (a commit fsyncs the journal and the database)"
                          if dbos_sql else ("not measured" if HAVE_DBOS else NA)))
    say("ratio = LocalFlow / baseline (above 1: LocalFlow takes longer or uses more)\n")
    say(results.table())
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": info, "rows": results.rows, "details": results.details},
                                            indent=2, default=str))
        say(f"\n(JSON written to {args.json_out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
