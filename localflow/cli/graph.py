"""`lf graph FLOW [--mermaid]`: show a flow's structure, as a tree or as a Mermaid flowchart.

FLOW is a flow name (``flows/<FLOW>.flow``) or a path to a ``.flow`` file. Reads
the flow only; the drawing itself is ``graph_render``'s (pure) job.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from localflow import ir
from localflow.cli.common import console, engine_for
from localflow.cli.graph_render import flow_mermaid, flow_tree
from localflow.cli.validate import shown_path
from localflow.dsl import load_flow_file
from localflow.engine import Engine


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("graph", help="show a flow's statements as a tree, or as a Mermaid flowchart")
    p.add_argument("flow", metavar="FLOW", help="a flow name (flows/<FLOW>.flow) or the path to a .flow file")
    p.add_argument("--mermaid", action="store_true",
                   help="print a Mermaid 'flowchart TD' to paste into Markdown instead of the tree")
    p.set_defaults(handler=cmd_graph)


def cmd_graph(args: argparse.Namespace) -> int:
    flow = load_target(engine_for(args), args.flow)
    if args.mermaid:
        sys.stdout.write(flow_mermaid(flow))
    else:
        console().print(flow_tree(flow))
    return 0


def load_target(engine: Engine, target: str) -> ir.Flow:
    """A path when it looks like one (ends in .flow or has a slash), else a flow name."""
    if target.endswith(".flow") or "/" in target or os.sep in target:
        path = Path(target)
        return load_flow_file(path, shown_path(engine, path))
    return engine.load_flow(target)[0]
