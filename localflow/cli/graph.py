"""`lf graph FLOW [--mermaid]`: show a flow's structure, as a tree or as a Mermaid flowchart.

FLOW is a flow name or a path to a ``.flow`` file, found as ``lf run`` finds it
(``Engine.load_flow``). Reads the flow only; the drawing is ``graph_render``'s
(pure) job.
"""

from __future__ import annotations

import argparse
import sys

from localflow import ir
from localflow.cli.common import console, engine_for, print_json
from localflow.errors import InputError
from localflow.cli.graph_render import flow_mermaid, flow_tree
from localflow.engine import Engine


def cmd_graph(args: argparse.Namespace) -> int:
    run = getattr(args, "run", None)
    if run is not None:
        if args.flow:
            raise InputError("give a FLOW or --run ID, not both: --run draws the flow a workflow runs")
        from localflow.cli.graph_run import cmd_graph_run

        return cmd_graph_run(args)
    if not args.flow:
        raise InputError("name a FLOW (lf graph PurchaseFlow), or a workflow with --run ID")
    flow = load_target(engine_for(args), args.flow)
    if args.json:
        print_json({"flow": flow.name, "file": flow.file, "definition": ir.to_json(flow)})
    elif args.mermaid:
        sys.stdout.write(flow_mermaid(flow))
    else:
        console().print(flow_tree(flow))
    return 0


def load_target(engine: Engine, target: str) -> ir.Flow:
    """A path (ends in .flow or has a slash) or a name, resolved as `lf run` resolves it."""
    return engine.load_flow(target)[0]
