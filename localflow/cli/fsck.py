"""`lf fsck [ID...] [--repair] [--json]`: check var/ (localflow/fsck.py does the work) and print each finding.

One line per finding, ``file[:line]: kind: message``, as a compiler prints errors, so
grep and editors can jump to it; ``--repair`` adds what it did under each finding it
fixed. The exit code says how it ended (docs/fsck.md): 0 clean (or everything found
was repaired), 1 findings remain, 3 something could not be read or repaired.
"""

from __future__ import annotations

import argparse
import os
import sys

from localflow import fsck
from localflow.cli.common import home_of, print_json
from localflow.errors import LocalFlowError
from localflow.store.paths import Paths, validate_workflow_id


def cmd_fsck(args: argparse.Namespace) -> int:
    paths = Paths.at(home_of(args))
    ids = [validate_workflow_id(i) for i in args.ids] if args.ids else None
    _note_supervisor(paths)
    report = fsck.check(paths, ids)
    if args.repair:
        report = fsck.repair(paths, report)
    if args.json:
        print_json({"home": str(paths.home), **report.to_json()})
        return report.exit_code
    for finding in report.findings:
        print(finding.render())
    print(summary(report, paths, args.repair))
    return report.exit_code


def summary(report: fsck.Report, paths: Paths, repairing: bool) -> str:
    checked = (f"checked {report.workflows} workflow{'s' if report.workflows != 1 else ''}, "
               f"{report.markers} timer marker{'s' if report.markers != 1 else ''}, {report.entries} entries")
    if not paths.var_dir.is_dir():
        return f"nothing to check: {paths.var_dir} does not exist"
    still = [f for f in report.findings if f.open]
    repaired = len(report.findings) - len(still)
    if not report.findings:
        return f"{checked}: clean"
    parts = [f"{len(still)} finding{'s' if len(still) != 1 else ''}"]
    if repaired:
        parts.append(f"{repaired} repaired")
    fixable = sum(f.repairable and not f.repair_failed for f in still)
    if fixable and not repairing:
        parts.append(f"{fixable} repairable with --repair")
    failed = sum(bool(f.repair_failed) for f in still)
    if failed:
        parts.append(f"{failed} could not be repaired")
    return f"{checked}: {', '.join(parts)}"


def _note_supervisor(paths: Paths) -> None:
    """A running supervisor writes while fsck reads: a marker finding may be its work in progress."""
    if not os.path.lexists(paths.supervisor_lock):  # (never created here: checking writes nothing)
        return
    from localflow.engine import Engine
    from localflow.supervisor.service import supervisor_running

    try:
        holder = supervisor_running(Engine(paths.home))
    except LocalFlowError:
        return
    if holder is not None:
        sys.stderr.write(f"note: {holder} is running; a timer marker finding may be its work in progress "
                         "(run again to confirm)\n")
