"""Issue 9's figures: Python `call` steps, each beside a baseline measured in the same run.

Run: ``python benchmarks/bench_calls.py`` (about a minute), ``--n 300`` (C2's workflow
count), ``--calls 500`` (C1's). DBOS rows need the ``bench`` extra.

- C1 dispatch: one no-op ``call`` attempt through the worker pool (open its two log
  files, hand the call to an idle worker, wait for the reply: what the executor does
  per attempt besides its durable appends) vs one ``run ["true"]`` attempt through the
  subprocess runner (the same log files, a spawn, a wait), and vs a bare
  ``subprocess.run(["true"])``. Target: a call costs at most 1/5 of a spawn.
- C2 throughput: B1 of bench_supervisor.py with ``call`` steps: N workflows of 3 no-op
  calls dropped into ``flows/`` of a home with one real ``lf supervise``, wall time from
  the first drop to the last "completed" line; vs DBOS (SQLite) running N workflows of 3
  no-op steps, one at a time and 100 at a time. Target: at least 2x DBOS's workflows/s.
  Durability: LocalFlow fsyncs each transaction's append (and the file and directories
  of a new workflow) before acting on it; DBOS's SQLite settings are printed (WAL,
  synchronous=NORMAL by default: a commit is durable against a process crash, not
  against power loss until the next checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_supervisor as bs  # noqa: E402  (the supervisor harness and the DBOS runner)
from localflow.runner.subprocess_runner import AttemptSpec, SubprocessRunner  # noqa: E402
from localflow.runner.workers import WorkerPool  # noqa: E402

CALLS = 'flow ThreeCalls\n' + "".join(f'  step {s}:\n    call noop.noop()\n' for s in "abc")


def spec(home: Path, i: int, call: "dict | None") -> AttemptSpec:
    logs = home / "var" / "workflows" / "w" / "logs"
    return AttemptSpec("w", f"s{i}", 1, [] if call else ["true"], {}, 10_000, home, logs / f"s{i}.in",
                       logs / f"s{i}.out", logs / f"s{i}.err", call=call)


def c1_dispatch(tmp: Path, calls: int) -> dict:
    home = tmp / "c1"
    (home / "flows").mkdir(parents=True)
    (home / "flows" / "noop.py").write_text("def noop():\n    return None\n")
    (home / "var" / "workflows" / "w" / "logs").mkdir(parents=True)
    pool, runner = WorkerPool(home, 1), SubprocessRunner()
    try:
        pool.start(spec(home, 0, {"target": "noop:noop"})).wait()  # the worker is up, the module imported
        rounds = []
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(calls):
                outcome = pool.start(spec(home, i, {"target": "noop:noop"})).wait()
                assert outcome.ok, outcome
            t_call = (time.perf_counter() - t0) / calls
            t0 = time.perf_counter()
            for i in range(calls // 5):
                assert runner.start(spec(home, i, None)).wait().ok
            t_spawn = (time.perf_counter() - t0) / (calls // 5)
            t0 = time.perf_counter()
            for _ in range(calls // 5):
                subprocess.run(["true"], check=True)
            t_bare = (time.perf_counter() - t0) / (calls // 5)
            rounds.append((t_call, t_spawn, t_bare))
    finally:
        pool.close()
    call, spawn, bare = (statistics.median(r[k] for r in rounds) for k in range(3))
    return {"call_ms": call * 1e3, "spawn_attempt_ms": spawn * 1e3, "bare_spawn_ms": bare * 1e3}


def c2_throughput(tmp: Path, n: int) -> dict:
    home = tmp / f"c2-{n}"
    bs.write_flow(home, "ThreeCalls", CALLS)
    (home / "flows" / "noop.py").write_text("def noop():\n    return None\n")
    flows = home / "flows"
    request = json.dumps({"flow": "ThreeCalls", "input": {}})
    try:
        with bs.Supervisor(home) as sup:
            sup.wait_ready()
            time.sleep(1.0)  # the pool's workers start with the supervisor
            cpu0, _ = bs.proc_cpu(sup.pid)
            t0 = time.perf_counter()
            for i in range(n):
                staged = flows / f"req-{i:06d}.tmp"
                staged.write_text(request)
                os.rename(staged, flows / f"req-{i:06d}.start.json")
            t_end = sup.wait_completed(n, timeout=120 + n, fallback=lambda: bs.completed_in_histories(home))
            cpu1, _ = bs.proc_cpu(sup.pid)
        done = bs.completed_in_histories(home)
        if done != n:
            raise RuntimeError(f"{done} of {n} histories end with WorkflowCompleted")
        return {"n": n, "wall_s": t_end - t0, "cpu_s": cpu1 - cpu0}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="C2: workflows (default 300)")
    parser.add_argument("--calls", type=int, default=500, help="C1: calls per round (default 500)")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lf-bench-calls-"))
    figures: dict = {}
    try:
        bs.run_cmd(bs.LF + ["--version"], tmp)
        bs.say("C1. dispatch of one no-op call step vs one `run [\"true\"]` attempt (median of 3 rounds)")
        c1 = figures["c1"] = c1_dispatch(tmp, args.calls)
        bs.say(f"   call through the worker pool: {c1['call_ms']:.3f} ms; `true` through the subprocess runner: "
               f"{c1['spawn_attempt_ms']:.3f} ms (ratio {c1['call_ms'] / c1['spawn_attempt_ms']:.2f}, target <= 0.20); "
               f"bare subprocess.run(['true']): {c1['bare_spawn_ms']:.3f} ms "
               f"(ratio {c1['call_ms'] / c1['bare_spawn_ms']:.2f})")
        bs.say(f"\nC2. throughput: {args.n} workflows of 3 no-op call steps through the drop folder, one `lf supervise`")
        dbos_runs = {}
        for batch in (1, 100):
            r = bs.dbos(tmp, "throughput", "--db", str(tmp / f"dbos-c2-{batch}.sqlite"), "--n", str(args.n),
                        "--batch", str(batch), "--steps", "noop")
            dbos_runs[batch] = r
            if r:
                bs.say(f"   DBOS, no-op steps, {batch} at a time: {r['wall_s']:.2f} s = {args.n / r['wall_s']:.0f} wf/s "
                       f"(SQLite journal_mode={r.get('journal_mode')}, synchronous={r.get('synchronous')})")
        c2 = figures["c2"] = c2_throughput(tmp, args.n)
        rate = args.n / c2["wall_s"]
        bs.say(f"   LocalFlow, call steps: {c2['wall_s']:.2f} s = {rate:.0f} wf/s, supervisor CPU {c2['cpu_s']:.2f} s "
               "(every transaction fsynced before it is acted on)")
        for batch, r in dbos_runs.items():
            if r:
                bs.say(f"   vs DBOS {batch} at a time: {rate / (args.n / r['wall_s']):.2f}x its workflows/s "
                       "(target >= 2x)")
        figures["dbos"] = dbos_runs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
