"""`lf resume ID [--flow FILE]` and `lf fork ID --at SEQ|--step NAME|--last-failure`: repairs (localflow/repair.py).

Resume appends to the workflow's own history; fork creates a new workflow and never
touches the origin. Both work with or without a supervisor running; the supervisor
(`lf supervise`) carries them on.
"""

from __future__ import annotations

import argparse

from localflow import repair
from localflow.cli.common import engine_for, lf_command, note_supervisor, print_json, resolve
from localflow.core import events as ev
from localflow.errors import InputError


def cmd_resume(args: argparse.Namespace) -> int:
    _one_output(args)
    engine = engine_for(args)
    workflow_id = resolve(engine, args.id)
    tx = repair.resume(engine, workflow_id, args.flow, args.reason)
    resumed = next(e for e in tx.appended if isinstance(e, ev.WorkflowResumed))
    scheduled = [e.step for e in tx.appended if isinstance(e, ev.ActivityScheduled)]
    if args.json:
        print_json({"id": workflow_id, "seq": resumed.seq, "from_seq": resumed.from_seq,
                    "released": resumed.from_seq is None, "repinned": resumed.flow is not None,
                    "scheduled": scheduled, "status": tx.state.status})
    elif resumed.from_seq is None:
        print(f"{workflow_id} released (seq {resumed.seq}): it runs from here on this machine")
    else:
        again = ", ".join(scheduled) or "what comes next"
        pinned = f", now on {resumed.flow_file}" if resumed.flow is not None else ""
        print(f"{workflow_id} resumed (seq {resumed.seq}, going back over seq {resumed.from_seq}{pinned}); "
              f"runs again: {again}")
    return _run_or_note(engine, workflow_id, args, since=resumed.seq - 1)


def cmd_fork(args: argparse.Namespace) -> int:
    _one_output(args)
    engine = engine_for(args)
    plan = repair.fork(engine, resolve(engine, args.id), at=args.at, step=args.step,
                       last_failure=args.last_failure, new_id=args.new_id, flow_name=args.flow,
                       dry_run=args.dry_run)
    if args.json:
        print_json({"id": plan.workflow_id, "origin": plan.origin, "at": plan.at, "dry_run": args.dry_run,
                    "events_copied": plan.at, "runs_again": plan.again, "interrupted": plan.interrupted,
                    "first_decisions": plan.first})
        return 0
    verb = "would fork" if args.dry_run else "forked"
    print(f"{verb} {plan.origin} at seq {plan.at} into {plan.workflow_id}")
    print(f"  runs again: {', '.join(plan.again) or 'nothing the origin ran after that point'}")
    if plan.interrupted:
        print(f"  running then, retried in the fork: {', '.join(plan.interrupted)}")
    print(f"  first: {', '.join(plan.first) or 'waits (nothing to decide yet)'}")
    return 0 if args.dry_run else _run_or_note(engine, plan.workflow_id, args, since=plan.at)


def _one_output(args: argparse.Namespace) -> None:
    if args.json and args.run:
        raise InputError("--run prints the workflow's progress, --json one object: choose one")


def _run_or_note(engine, workflow_id: str, args: argparse.Namespace, since: int) -> int:
    """With ``--run``: drive it to the end here, as `lf run` does; else say who will."""
    if not args.run:
        note_supervisor(engine, "it runs when one starts (`lf supervise`), or run it here with --run")
        return 0
    from localflow.cli.start import follow

    return follow(engine, workflow_id, since, lf_command(args))
