"""End to end: what `lf run` costs per step on top of running the commands themselves.

Run: ``python benchmarks/bench_engine.py`` (about 5 s; writes only under a temp dir).

It writes ``flows/Bench.flow`` (20 steps, each ``run ["true"]``) into a temp home and
times ``lf run Bench`` as a subprocess (``python -m localflow``, the same interpreter
and package as this script), ROUNDS times. Each round also measures, right before:

- the baseline: ``true`` run 20 times with ``subprocess.run``, one after the other,
  in this process: what the steps' commands cost with no engine at all;
- the CLI start-up: ``lf --version`` (interpreter start + imports), which ``lf run``
  pays once per workflow, not per step.

Figures are medians over the rounds. ``overhead per step`` = (lf run - baseline) / 20,
once with the start-up included and once with it subtracted (the steady per-step
cost: history writes with fsync, re-reading the history, threads, log files).
``ratio`` = lf run wall time / baseline wall time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import localflow  # only to show which copy the subprocesses run

STEPS = 20
ROUNDS = 3
LF = [sys.executable, "-m", "localflow"]


def flow_source(steps: int) -> str:
    lines = ["flow Bench"]
    for i in range(steps):
        lines += [f"  step s{i}:", '    run ["true"]']
    return "\n".join(lines) + "\n"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def baseline() -> None:
    for _ in range(STEPS):
        subprocess.run(["true"], check=True)


def startup(home: Path) -> None:
    subprocess.run(LF + ["--version"], check=True, stdout=subprocess.DEVNULL, cwd=home)


def lf_run(home: Path, round_no: int) -> None:
    # cwd=home: `python -m` puts the cwd first on sys.path, which could pick up another checkout
    proc = subprocess.run(LF + ["--home", str(home), "run", "Bench", "--id", f"bench-{round_no}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=home)
    if proc.returncode != 0 or "completed" not in proc.stdout:
        raise SystemExit(f"lf run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def main() -> None:
    print(f"bench_engine: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, "
          f"localflow from {Path(localflow.__file__).parent}")
    home = Path(tempfile.mkdtemp(prefix="lf-bench-engine-"))
    try:
        (home / "flows").mkdir()
        (home / "flows" / "Bench.flow").write_text(flow_source(STEPS))
        startup(home)  # warm the page cache and the .pyc files before measuring
        rows = []
        for round_no in range(ROUNDS):
            rows.append((timed(baseline), timed(lambda: startup(home)), timed(lambda: lf_run(home, round_no))))
            print(f"  round {round_no + 1}: baseline {rows[-1][0] * 1e3:.1f} ms, "
                  f"start-up {rows[-1][1] * 1e3:.1f} ms, lf run {rows[-1][2] * 1e3:.1f} ms")
        base, start, run = (statistics.median(column) for column in zip(*rows))
        print(f"\n{STEPS} steps of `true`, median of {ROUNDS} rounds")
        print(f"  {'baseline: subprocess.run x20':40}{base * 1e3:8.1f} ms  {base / STEPS * 1e3:6.2f} ms/step")
        print(f"  {'lf --version (start-up, once per run)':40}{start * 1e3:8.1f} ms")
        print(f"  {'lf run':40}{run * 1e3:8.1f} ms  {run / STEPS * 1e3:6.2f} ms/step")
        print(f"  overhead per step, start-up included: {(run - base) / STEPS * 1e3:6.2f} ms")
        print(f"  overhead per step, start-up excluded: {(run - start - base) / STEPS * 1e3:6.2f} ms")
        print(f"  ratio lf run / baseline: {run / base:.1f}x "
              f"({(run - start) / base:.1f}x with the start-up excluded)")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
