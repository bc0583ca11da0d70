"""`lf delete ID...` and `lf prune --older AGE`: remove workflows that have ended (localflow/client.py does it).

A deleted workflow is gone with its folder, its timer markers, its summary and its
(attached) child workflows; a workflow that has not ended is deleted only with
``--force``, which terminates it first. Prune never touches a workflow that has not ended.
"""

from __future__ import annotations

import argparse

from localflow.cli.common import client_for, print_json


def cmd_delete(args: argparse.Namespace) -> int:
    client = client_for(args)
    targets = list(dict.fromkeys(client.resolve(ref) for ref in args.ids))  # every id checked before any goes
    deleted: list[str] = []
    for workflow_id in targets:
        if workflow_id in deleted:
            continue  # a child of one deleted before
        deleted.extend(client.delete(workflow_id, force=args.force))
    if args.json:
        print_json([{"id": workflow_id} for workflow_id in deleted])
    else:
        for workflow_id in deleted:
            print(f"deleted {workflow_id}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from localflow.client import parse_age

    client = client_for(args)
    statuses = args.status or ["completed"]
    ids = client.prune(status=statuses, older_than=parse_age(args.older), dry_run=args.dry_run)
    if args.json:
        print_json([{"id": workflow_id, "deleted": not args.dry_run} for workflow_id in ids])
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    for workflow_id in ids:
        print(f"{verb} {workflow_id}")
    count = f"{len(ids)} workflow{'s' if len(ids) != 1 else ''}"
    print(f"{count} would be deleted (dry run: nothing was deleted)" if args.dry_run else f"{count} deleted")
    return 0
