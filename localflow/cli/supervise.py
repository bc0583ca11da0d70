"""`lf supervise`: run the supervisor in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from localflow.cli.common import engine_for
from localflow.supervisor.service import Supervisor


def log_line(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    sys.stdout.write(f"{stamp}  {message}\n")
    sys.stdout.flush()


def cmd_supervise(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    stop = threading.Event()

    def request_stop(signum, frame):  # noqa: ARG001 - signal handler signature
        log_line(f"received {signal.Signals(signum).name}")
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    Supervisor(engine, log_line, rescan_s=max(args.rescan, 0.2), grace_s=args.grace,
               workers=args.workers, max_activities=max(args.max_activities, 0)).run(stop)
    return 0
