"""`lf validate [FILE...]`: parse and check flow files, reporting every problem compiler style.

Adds the one check the parser cannot make from a single file: a child-flow step
must name a flow the engine can find (``Engine.find_flow``: ``flows/<Name>.flow`` or
one folder below), exactly as it will look when the step runs. Reads flow files
only; it never starts, runs or writes anything. Exit 0 when every file is good, 2
otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

from localflow import ir
from localflow.cli.common import engine_for, print_json
from localflow.cli.main import shown
from localflow.dsl import read_flow_file
from localflow.dsl.lexer import diagnostic, physical_lines
from localflow.engine import Engine
from localflow.errors import Diagnostic, FlowNotFound, FlowSyntaxError


@dataclass(frozen=True)
class FileReport:
    """One checked file: the flow when it parsed, and every problem found in it."""

    file: str
    flow: Union[ir.Flow, None]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not self.diagnostics

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "ok": self.ok,
            "flow": self.flow.name if self.flow is not None else None,
            "errors": [{"line": d.line, "col": d.col, "message": d.message} for d in self.diagnostics],
        }


def cmd_validate(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    paths = [Path(f) for f in args.files] if args.files else engine.flow_files()
    reports = [check_file(engine, path) for path in paths]
    if args.json:
        print_json([r.to_json() for r in reports])
    elif not reports:
        sys.stderr.write(f"no flow files in {shown_path(engine, engine.paths.flows_dir)}/: nothing to check\n")
    else:
        _print_reports(reports)
    return 0 if all(r.ok for r in reports) else 2


def check_file(engine: Engine, path: Path) -> FileReport:
    shown = shown_path(engine, path)
    try:
        flow, source = read_flow_file(path, shown)
    except FlowSyntaxError as exc:
        return FileReport(shown, None, exc.diagnostics)
    problems = missing_child_flows(flow, lambda name: child_flow_problem(engine, name))
    lines = physical_lines(source)
    return FileReport(shown, flow, tuple(diagnostic(shown, lines, ln, col, msg) for ln, col, msg in problems))


def missing_child_flows(flow: ir.Flow, problem_of: Callable[[str], Union[str, None]]) -> list[tuple[int, int, str]]:
    """(line, col, message) for each child-flow step whose flow cannot be found, in file order.

    ``problem_of(name)`` says what is wrong with a child flow name, None when it resolves.
    """
    problems = []
    for stmt in ir.walk(flow.body):
        if isinstance(stmt, ir.ChildFlow):
            problem = problem_of(stmt.flow)
            if problem is not None:
                problems.append((stmt.line, stmt.col, problem))
    return sorted(problems, key=lambda p: (p[0], p[1]))


def child_flow_problem(engine: Engine, name: str) -> Union[str, None]:
    try:
        engine.find_flow(name)
    except FlowNotFound:
        places = [engine.display(p) for p in engine.flow_files() if p.stem == name]
        if len(places) > 1:
            return f"child flow '{name}' is ambiguous: {', '.join(places)}"
        return f"unknown flow '{name}' (no flows/{name}.flow)"
    return None


def shown_path(engine: Engine, path: Path) -> str:
    """A path as users see it: relative to the home when inside it, else as given."""
    absolute = Path(os.path.abspath(path))
    for candidate, home in ((absolute, engine.paths.home), (absolute.resolve(), engine.paths.home.resolve())):
        try:
            return str(candidate.relative_to(home))
        except ValueError:
            continue
    return str(path)


def _print_reports(reports: list[FileReport]) -> None:
    for report in reports:
        if report.ok:
            assert report.flow is not None
            steps = len(report.flow.step_names())
            sys.stdout.write(f"ok  {report.file}  ({report.flow.name}: {steps} step{'' if steps == 1 else 's'})\n")
        for d in report.diagnostics:
            sys.stderr.write(shown(d.render()) + "\n")  # a control character in the file never reaches the terminal
    sys.stdout.flush()
    errors = sum(len(r.diagnostics) for r in reports)
    bad = sum(1 for r in reports if not r.ok)
    if bad:
        sys.stderr.write(f"{errors} error{'' if errors == 1 else 's'} in {bad} file{'' if bad == 1 else 's'}\n")
