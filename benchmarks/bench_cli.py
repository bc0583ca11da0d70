"""The `lf` commands people type, with 300 and 3,000 workflows held (issue 13).

Clones N finished workflows (bench_supervisor's templates), then times real `lf`
processes, each the median of 5, against the same run's baseline: a bare
`python -c pass` (the interpreter's own start-up, which every command pays):

- `lf --help` (builds the parser only), `lf list` (the newest 50, "showing 50 of N"),
  `lf list -q --limit 0` (every id), `lf count --by status`, `lf inspect <random tail>`
  (resolving a short id among N), `lf history @last -o jsonl`.

    python benchmarks/bench_cli.py [--n 300 3000]

Figures are this run's only (a shared machine is noisy); it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_supervisor import Templates  # noqa: E402 - the workflows to clone


def timed(argv: list[str], home: Path, repeats: int = 5) -> float:
    """The median wall time of ``repeats`` runs, in ms (the command must exit 0)."""
    samples = []
    env = {**os.environ, "LOCALFLOW_HOME": str(home), "COLUMNS": "120"}
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=home, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[300, 3000], help="workflows held (default 300 3000)")
    args = parser.parse_args()
    lf = [sys.executable, "-m", "localflow"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    try:
        templates = Templates(tmp)
        base = timed([sys.executable, "-c", "pass"], tmp)
        print(f"baseline: python -c pass {base:7.1f} ms")
        for n in args.n:
            home = tmp / f"home-{n}"
            ids = [f"Three-20261130-0900{i % 100:02d}-{i:06x}" for i in range(n)]
            templates.populate(home, "finished", ids)
            subprocess.run(lf + ["list"], cwd=home, env={**os.environ, "LOCALFLOW_HOME": str(home)},
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # summaries written once
            tail = ids[n // 2][-6:]
            print(f"\n{n:,} workflows held")
            for name, argv in (("lf --help", ["--help"]), ("lf list", ["list"]), ("lf list -q --limit 0",
                               ["list", "-q", "--limit", "0"]), ("lf count --by status", ["count", "--by", "status"]),
                               (f"lf inspect {tail}", ["inspect", tail]),
                               ("lf history @last -o jsonl", ["history", "@last", "-o", "jsonl"])):
                ms = timed(lf + argv, home)
                print(f"  {name:<28} {ms:7.1f} ms  ({ms / base:4.1f}x python -c pass)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
