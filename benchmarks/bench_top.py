"""`lf top` with 10,000 workflows: what a refresh costs (issue 14).

Clones N finished workflows and K waiting for a signal (bench_supervisor's templates and
clone_workflows), then measures the dashboard model (localflow/dashboard.py) and its drawing:

- load, cold (no summaries yet: every history folded) and warm (summaries match);
- a refresh after an event: K/10 waiting workflows get a signal, their ids are refreshed
  (what a file event hands the model), then one frame is computed and drawn at 120 columns;
- a pass with nothing changed: a stat of each live history, a frame, a drawing;
- a rescan: a stat of every history;
- the baseline: what a naive dashboard would do per refresh, `listing.rows` (warm summaries).

    python benchmarks/bench_top.py [--n 10000] [--waiting 100]

Figures are this run's only (a shared machine is noisy); it asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_supervisor import Templates  # noqa: E402 - the workflows to clone

from localflow import listing  # noqa: E402
from localflow.dashboard import Dashboard  # noqa: E402
from localflow.engine import Engine  # noqa: E402


def timed(fn, repeats: int = 5) -> float:
    """The median of ``repeats`` runs, in ms."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def draw(board: Dashboard) -> None:
    from rich.console import Console

    from localflow.cli.times import TimePolicy
    from localflow.cli.top import top_view

    now = int(time.time() * 1000)
    Console(file=io.StringIO(), width=120, color_system=None).print(
        top_view(board.frame(now), TimePolicy("relative", now), 10, "home", "supervisor pid 1"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="finished workflows (default 10,000)")
    parser.add_argument("--waiting", type=int, default=100, help="workflows waiting for a signal (default 100)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-top-"))
    try:
        templates = Templates(tmp)
        home = tmp / "home"
        t0 = time.perf_counter()
        templates.populate(home, "finished", [f"Three-{i:06d}" for i in range(args.n)])
        templates.populate(home, "waiting", [f"Waiter-{i:06d}" for i in range(args.waiting)])
        print(f"{args.n:,} finished + {args.waiting:,} waiting workflows cloned in {time.perf_counter() - t0:.1f} s")
        engine = Engine(home)

        board = Dashboard(engine)
        cold = timed(board.load, repeats=1)
        board = Dashboard(engine)
        warm = timed(lambda: Dashboard(engine).load(), repeats=3)
        board.load()
        print(f"load, cold (folds every history, writes summaries): {cold:9.1f} ms")
        print(f"load, warm (summaries match):                        {warm:9.1f} ms")

        batch = [f"Waiter-{i:06d}" for i in range(max(args.waiting // 10, 1))]
        costs = []
        for round_ in range(3):
            for workflow_id in batch:
                engine.signal(workflow_id, "nope", round_)  # an append each (a signal nobody waits for)
            reads = board.reads
            costs.append(timed(lambda: (board.refresh(batch), draw(board)), repeats=1))
            assert board.reads - reads == len(batch), (board.reads - reads, len(batch))
        print(f"refresh after {len(batch)} histories changed + frame + draw:   {statistics.median(costs):9.1f} ms "
              f"({len(batch)} histories read, of {len(board.rows):,})")
        quiet = timed(lambda: (board.poll_live(), draw(board)))
        print(f"pass with nothing changed ({len(board.live)} live stats) + frame + draw: {quiet:9.1f} ms")
        print(f"frame alone (counts, sections, from memory):           {timed(lambda: board.frame(0)):9.1f} ms")
        print(f"draw alone at 120 columns:                             {timed(lambda: draw(board)):9.1f} ms")
        print(f"rescan (a stat of every history):                     {timed(board.rescan, repeats=3):9.1f} ms")
        naive = timed(lambda: listing.rows(engine), repeats=3)
        print(f"baseline: listing.rows per refresh (warm summaries):   {naive:9.1f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
