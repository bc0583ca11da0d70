"""The flow DSL: ``.flow`` text -> ``ir.Flow``, or one FlowSyntaxError holding every problem.

``lexer`` makes logical lines, ``parser`` builds the IR (syntax; steps and their
clauses are ``steps``, if/parallel/race/for ``control``, while/repeat/signal loops and
break/continue ``loops``, lock and ``on signal`` handlers ``scopes``, the trailing
options of a block line ``options``), ``checks`` looks at what the IR means (names in
scope, duplicates, branch counts, loop limits and other bounds, jumps outside loops,
reachability). This module runs them, orders the diagnostics, and reads flow files.
See docs/dsl.md.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from localflow import ir
from localflow.dsl import checks, parser
from localflow.dsl.lexer import diagnostic, physical_lines
from localflow.dsl.parser import DEFAULT_TIMEOUT_MS, parse_duration
from localflow.errors import Diagnostic, FlowSyntaxError

__all__ = ["DEFAULT_TIMEOUT_MS", "load_flow_file", "parse_duration", "parse_flow", "read_flow_file"]


def parse_flow(text: str, file: str = "<string>") -> ir.Flow:
    """Parse and check a flow; raises FlowSyntaxError listing every problem found."""
    return _parse(text, file, expected_name=None)


def load_flow_file(path: str | os.PathLike[str], display_path: str | None = None) -> ir.Flow:
    """Read a ``.flow`` file (UTF-8) whose flow must be named after the file's stem."""
    return read_flow_file(path, display_path)[0]


def read_flow_file(path: str | os.PathLike[str], display_path: str | None = None) -> tuple[ir.Flow, str]:
    """Like ``load_flow_file``, also returning the exact source text that was parsed."""
    shown = str(path) if display_path is None else display_path
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FlowSyntaxError([Diagnostic(shown, 1, 1, f"cannot read the flow file: {exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = (f"the flow file is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                   "save it as UTF-8")
        raise FlowSyntaxError([Diagnostic(shown, 1, 1, message)]) from None
    return _parse_once(text, shown, Path(path).stem), text


@functools.lru_cache(maxsize=128)
def _parse_once(text: str, shown: str, expected_name: str) -> ir.Flow:
    """A flow file's text parsed once per process (the IR is immutable; an edited file is new text):
    the supervisor reads a flow for every request that starts it."""
    return _parse(text, shown, expected_name=expected_name)


def _parse(text: str, file: str, expected_name: str | None) -> ir.Flow:
    if text.startswith("\ufeff"):
        text = text[1:]
    nul = text.find("\x00")
    if nul >= 0:  # a binary or damaged file: say so once, where it is, rather than what it breaks
        lines = physical_lines(text[:nul])
        source = physical_lines(text.replace("\x00", "\u2400"))  # shown as a visible symbol, same column
        raise FlowSyntaxError([diagnostic(file, source, len(lines), len(lines[-1]) + 1,
                                          "the flow file contains a NUL byte")])
    flow, diagnostics = parser.parse(text, file, expected_name)
    if flow is not None:
        diagnostics += checks.check_flow(flow, physical_lines(text), file)
    if diagnostics or flow is None:
        raise FlowSyntaxError(_in_order(diagnostics))
    return flow


def _in_order(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Each distinct problem once, in file order (a bad expression is seen by parser and checks)."""
    seen: set[tuple[int, int, str]] = set()
    unique = []
    for d in diagnostics:
        if (d.line, d.col, d.message) not in seen:
            seen.add((d.line, d.col, d.message))
            unique.append(d)
    return sorted(unique, key=lambda d: (d.line, d.col))
