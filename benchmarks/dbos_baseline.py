"""DBOS Transact on SQLite: the baseline half of bench_supervisor.py, run in its own process.

Not meant to be run by hand (bench_supervisor.py runs it), but it can be:

    python benchmarks/dbos_baseline.py throughput --db /tmp/x.sqlite --n 100 --batch 100 --steps true --out r.json
    python benchmarks/dbos_baseline.py list --db /tmp/y.sqlite --n 1000 --out r.json
    python benchmarks/dbos_baseline.py listproc --db /tmp/y.sqlite --out r.json

Needs the ``bench`` extra (``pip install '.[bench]'``: dbos>=3.4). Each mode writes one
JSON object to ``--out``; without dbos it writes ``{"error": ...}`` and exits 3.

- ``throughput``: N workflows of 3 steps, each step a no-op (``--steps noop``) or
  ``subprocess.run(["true"])`` (``--steps true``: the same work as a LocalFlow step),
  ``--batch 1`` (one after the other) or ``--batch 100`` (100 started with
  ``DBOS.start_workflow``, then all awaited, then the next 100). Timed from the first
  workflow to the last result; DBOS.launch() is not timed. CPU from getrusage (this
  process; the ``true`` children separately).
- ``list``: runs one real workflow, clones its rows (every table keyed by
  ``workflow_uuid``) to N workflows in one SQL transaction, then times
  ``DBOS.list_workflows()`` (all rows) and ``DBOS.list_workflows(limit=50, sort_desc=True)``
  in this process, median of ``--repeats``.
- ``listproc``: a whole process against an existing database: import dbos, configure,
  launch, ``list_workflows(limit=50, sort_desc=True)``; the caller times the process.

The SQLite settings DBOS runs with (``PRAGMA journal_mode``, ``PRAGMA synchronous``,
read on DBOS's own engine) are reported by every mode.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
WORKFLOW_TABLES = ("workflow_status", "workflow_input", "workflow_output", "operation_outputs")


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def setup(db: Path, steps: str = "noop"):
    from dbos import DBOS

    DBOS(config={"name": "lfbench", "system_database_url": f"sqlite:///{db}", "log_level": "WARNING"})

    if steps == "true":
        @DBOS.step()
        def step(i: int) -> int:
            subprocess.run(["true"], check=True)
            return i
    else:
        @DBOS.step()
        def step(i: int) -> int:
            return i

    @DBOS.workflow()
    def three() -> int:
        return step(1) + step(2) + step(3)

    DBOS.launch()
    return DBOS, three


def settings(dbos_cls) -> dict:
    import sqlalchemy as sa
    from dbos._dbos import _get_dbos_instance

    engine = _get_dbos_instance()._sys_db.engine
    with engine.connect() as conn:
        journal = conn.execute(sa.text("PRAGMA journal_mode")).scalar()
        sync = conn.execute(sa.text("PRAGMA synchronous")).scalar()
    from importlib.metadata import version
    return {"journal_mode": journal, "synchronous": f"{sync} ({SYNCHRONOUS.get(sync, '?')})",
            "dbos_version": version("dbos")}


def throughput(args) -> dict:
    DBOS, three = setup(args.db, args.steps)
    info = settings(DBOS)
    three()  # warm: first-call paths, SQLite page cache
    cpu0, child0, t0 = cpu_self(), cpu_children(), time.perf_counter()
    done = 0
    while done < args.n:
        count = min(args.batch, args.n - done)
        if args.batch == 1:
            three()
        else:
            handles = [DBOS.start_workflow(three) for _ in range(count)]
            for handle in handles:
                handle.get_result()
        done += count
    wall = time.perf_counter() - t0
    info.update(n=args.n, batch=args.batch, steps=args.steps, wall_s=wall, cpu_s=cpu_self() - cpu0,
                children_cpu_s=cpu_children() - child0)
    return info


def clone_rows(db: Path, template: str, n: int) -> None:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        with conn:
            for table in WORKFLOW_TABLES:
                columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
                if "workflow_uuid" not in columns:
                    continue
                names = ", ".join(f'"{c}"' for c in columns)
                picks = ", ".join("?" if c == "workflow_uuid" else f'"{c}"' for c in columns)
                conn.executemany(f'INSERT INTO {table} ({names}) SELECT {picks} FROM {table} WHERE workflow_uuid = ?',
                                 ((f"copy-{i:06d}", template) for i in range(n - 1)))
    finally:
        conn.close()


def listing(args) -> dict:
    DBOS, three = setup(args.db)
    info = settings(DBOS)
    handle = DBOS.start_workflow(three)
    handle.get_result()
    clone_rows(args.db, handle.workflow_id, args.n)
    found = len(DBOS.list_workflows())
    if found != args.n:
        raise SystemExit(f"expected {args.n} workflows after cloning, DBOS lists {found}")

    def median(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    info.update(n=args.n, list_all_s=median(lambda: DBOS.list_workflows()),
                list_50_s=median(lambda: DBOS.list_workflows(limit=50, sort_desc=True)))
    return info


def listproc(args) -> dict:
    DBOS, _ = setup(args.db)
    rows = DBOS.list_workflows(limit=50, sort_desc=True)
    return {"rows": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["throughput", "list", "listproc"])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", choices=["noop", "true"], default="noop")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    try:
        import dbos  # noqa: F401
    except ImportError as exc:
        args.out.write_text(json.dumps({"error": f"dbos not importable: {exc}"}))
        sys.exit(3)
    result = {"throughput": throughput, "list": listing, "listproc": listproc}[args.mode](args)
    args.out.write_text(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # DBOS's background threads would otherwise hold the exit up; nothing is left to flush


if __name__ == "__main__":
    main()
