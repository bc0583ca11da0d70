"""Time-skipping: `lf run --skip-time` of a flow that sleeps 30 days and retries with hour-long backoff.

Run: ``python benchmarks/bench_skip_time.py`` (about 10 s), ``--runs 7`` (default 5).

The flow (issue's acceptance case): a real step that fails twice, then succeeds (a shell
script counting its attempts in a file), ``retry 3 every 1h`` (waits 1h, then 2h), then
``sleep 30d``: 30 days and 3 hours of virtual time. Measured as a whole ``lf run``
process, wall time, median of the runs. Baseline, measured in the same run: ``lf run``
(real clock) of the same flow with every wait shortened to 1 ms (``every 1ms``,
``sleep 1ms``): the same processes, the same events but the TimeSkipped ones, no
waiting. The ratio says what skipping costs over doing the same work with nothing to
wait for. Target: the skip-time run under 2 s. Writes only under a ``tempfile.mkdtemp()``
directory, removed at the end.
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

import localflow

FLAKY = """#!/bin/sh
n=$(cat attempts.txt 2>/dev/null || echo 0)
n=$((n + 1))
echo $n > attempts.txt
if [ "$n" -lt 3 ]; then echo "not yet ($n)" >&2; exit 1; fi
echo "{\\"attempts\\": $n}"
"""

FLOW = """flow Month
  step flaky:
    run ["sh", "flows/flaky.sh"]
    retry 3 every {every}
  sleep {sleep}
  return flaky.result
"""


def _home(root: Path, name: str, every: str, sleep: str) -> Path:
    home = root / name
    (home / "flows").mkdir(parents=True)
    (home / "flows" / "flaky.sh").write_text(FLAKY)
    (home / "flows" / "Month.flow").write_text(FLOW.format(every=every, sleep=sleep))
    return home


def _run(home: Path, *extra: str) -> tuple[float, dict]:
    (home / "attempts.txt").unlink(missing_ok=True)
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "localflow", "--home", str(home), "run", "Month", *extra],
                          capture_output=True, text=True, cwd=home, timeout=120)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"lf run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    listing = subprocess.run([sys.executable, "-m", "localflow", "--home", str(home), "list", "--json", "--limit", "1"],
                             capture_output=True, text=True, cwd=home, check=True)
    workflow_id = json.loads(listing.stdout)[0]["id"]
    records = [json.loads(line) for line in
               (home / "var" / "workflows" / workflow_id / "history.jsonl").read_text().splitlines()]
    skipped = sum(r["skipped_ms"] for r in records if r["type"] == "TimeSkipped")
    return elapsed, {"events": len(records), "skipped_ms": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"localflow {localflow.__version__} from {Path(localflow.__file__).parent}; python {sys.version.split()[0]}")
    root = Path(tempfile.mkdtemp(prefix="lf-bench-skip-"))
    try:
        skip_home = _home(root, "skip", "1h", "30d")
        base_home = _home(root, "base", "1ms", "1ms")
        _run(base_home)  # warm the page cache and .pyc files for both
        skip, base, facts = [], [], {}
        for _ in range(args.runs):  # interleaved, so drift on a shared machine hits both alike
            elapsed, facts = _run(skip_home, "--skip-time")
            skip.append(elapsed)
            elapsed, base_facts = _run(base_home)
            base.append(elapsed)
        skip_med, base_med = statistics.median(skip), statistics.median(base)
        days = facts["skipped_ms"] / 86_400_000
        print(f"flow: 3 attempts of a real step (retry 3 every 1h: waits 1h + 2h), then sleep 30d; "
              f"{args.runs} runs each, median wall time of the whole `lf run` process")
        print(f"  lf run --skip-time (30d 3h virtual)      {skip_med:7.3f} s   "
              f"(min {min(skip):.3f}, max {max(skip):.3f}; {facts['events']} events, "
              f"{days:.3f} days skipped)")
        print(f"  baseline: lf run, waits cut to 1ms       {base_med:7.3f} s   "
              f"(min {min(base):.3f}, max {max(base):.3f}; {base_facts['events']} events)")
        print(f"  ratio skip-time / baseline               {skip_med / base_med:7.2f}x")
        verdict = "met" if skip_med < 2.0 else "MISSED"
        print(f"  target: under 2 s                        {verdict} ({skip_med:.3f} s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
