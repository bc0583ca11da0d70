"""`lf graph FLOW [--mermaid]`: show a flow's structure, as a tree or as a Mermaid flowchart.

FLOW is a flow name or a path to a ``.flow`` file, found as ``lf run`` finds it
(``Engine.load_flow``). Reads the flow only; the drawing is ``graph_render``'s
(pure) job.
"""

from __future__ import annotations

import argparse
import sys

from localflow import ir
from localflow.cli.common import console, engine_for
from localflow.cli.graph_render import flow_mermaid, flow_tree
from localflow.engine import Engine


def cmd_graph(args: argparse.Namespace) -> int:
    flow = load_target(engine_for(args), args.flow)
    if args.mermaid:
        sys.stdout.write(flow_mermaid(flow))
    else:
        console().print(flow_tree(flow))
    return 0


def load_target(engine: Engine, target: str) -> ir.Flow:
    """A path (ends in .flow or has a slash) or a name, resolved as `lf run` resolves it."""
    return engine.load_flow(target)[0]
