"""`lf export ID [-o FILE]` and `lf import FILE`: a history from one machine as a fixture on another.

The bundle format and its checks live in localflow/bundle.py. An imported workflow is
held: nothing of it runs (no process, no timer, no child) until `lf resume ID`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from localflow import bundle
from localflow.cli.common import engine_for, print_json, resolve


def cmd_export(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    workflow_id = resolve(engine, args.id)
    data = bundle.export(engine.paths, workflow_id, engine.clock())
    if args.to_file in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        bundle.write_file(Path(args.to_file), data)
        count = len(json.loads(data[:data.index(b"\n")])["workflows"])
        print(f"exported {workflow_id} ({count} workflow{'s' if count != 1 else ''}) to {args.to_file}",
              file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    try:
        found = bundle.read(args.file)
    except bundle.BundleError as exc:
        raise bundle.BundleError(exc.name, exc.line, f"{exc.reason}; nothing was imported") from None
    sections = bundle.import_bundle(engine, found, engine.clock())
    rows = [{"id": s.workflow_id, "flow": s.state.flow.name, "status": s.state.status,
             "events": len(s.lines), "parent": (s.state.parent or {}).get("workflow_id"), "held": True}
            for s in sections]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            below = f", child of {row['parent']}" if row["parent"] else ""
            print(f"imported {row['id']}  ({row['flow']}, {row['events']} events, was {row['status']}{below})")
        print(f"held: nothing of {'them' if len(rows) > 1 else 'it'} runs here until `lf resume ID` "
              f"releases it; `lf replay {found.root}` checks it against its flow", file=sys.stderr)
    return 0
