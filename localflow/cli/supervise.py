"""`lf supervise`: run the supervisor in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Union

from localflow.cli.common import engine_for
from localflow.runner.dask_runner import ClusterSetupError, DaskRunner
from localflow.supervisor.service import Supervisor


def log_line(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # UTC, as every time in the messages
    sys.stdout.write(f"{stamp}  {message}\n")
    sys.stdout.flush()


def cmd_supervise(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    stop = threading.Event()

    def request_stop(signum, frame):  # noqa: ARG001 - signal handler signature
        log_line(f"received {signal.Signals(signum).name}")
        stop.set()

    runner = make_runner(args, engine.paths.home)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    Supervisor(engine, log_line, rescan_s=max(args.rescan, 0.2), grace_s=args.grace,
               workers=args.workers, max_activities=max(args.max_activities, 0), runner=runner).run(stop)
    return 0


def make_runner(args: argparse.Namespace, home: Path) -> Union[object, None]:
    """Where attempts run: None for this machine (the executor's default), a DaskRunner for a cluster.

    ``--executor dask`` without the dask extra, or without ``--scheduler``, is a usage error (one
    line). A scheduler that cannot be reached is not: the supervisor starts, says so, and each
    attempt sent to the cluster meanwhile fails with ``SchedulerUnreachable`` (docs/cluster.md).
    """
    kind = getattr(args, "executor", "local") or "local"
    scheduler = getattr(args, "scheduler", None)
    if kind == "local":
        if scheduler:
            raise ClusterSetupError("--scheduler is for --executor dask")
        return None
    return DaskRunner(home, scheduler, workers=args.workers, steps=getattr(args, "cluster_steps", "call"),
                      log=log_line)
