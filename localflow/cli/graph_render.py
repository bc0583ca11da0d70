"""What `lf graph` shows: a Flow as a rich Tree, or as Mermaid ``flowchart TD`` text.

Pure functions of the IR (``localflow.ir``): they read no files and print
nothing. The Tree is for the terminal and shows every clause that matters; the
Mermaid text is for pasting into a README, so its labels are shorter and its
syntax deliberately conservative (``id["label"]``, ``id{"label"}``, ``-->``,
``-.->``, ``|label|``): every label is escaped with Mermaid entity codes, and node
ids are ``n1``, ``n2``... so no flow text can ever end up in the syntax.

Every statement is drawn: loops (for, signal for, while, repeat ... until) as a
decision that the body returns to, with their bounds (``parallel N``, ``first K``,
``keep rest``, ``max N``); ``break`` leaves its loop and ``continue`` goes back to it;
``branch if`` conditions label their branch; a lock shows its name (and ``global``);
a block with ``on signal`` handlers is a scope whose handlers hang off it like catches;
a detached flow step says so.

With ``marks`` (``lf graph --run``), a statement's node also says how it went in one
workflow: ``marks(stmt)`` returns a ``Mark`` (a status and a short text) or None. The tree
appends it in the status's colour; Mermaid adds it on a second line of the label and gives
the node a class per status (``classDef``), so the chart is coloured where it is pasted.
"""

from __future__ import annotations

import json
import os.path
from typing import Callable, NamedTuple, Union

from rich.text import Text
from rich.tree import Tree

from localflow import ir
from localflow.dsl import DEFAULT_TIMEOUT_MS

_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))
_TREE_EXPR = 100  # longest expression text in a tree label
_CHART_TEXT = 40  # longest expression or command text in a Mermaid label
_KEYWORD, _NAME, _DIM = "bold", "cyan", "dim"


class Mark(NamedTuple):
    """How a statement went in one run: ``status`` (completed, failed, running, waiting, not run...)
    and a short ``text`` (``completed, 2 attempts``)."""

    status: str
    text: str


Marks = Callable[[object], Union[Mark, None]]
MARK_STYLE = {"completed": "green", "failed": "red", "running": "cyan", "waiting": "yellow", "caught": "yellow",
              "not run": "dim", "cancelled": "magenta", "skipped": "dim"}
# Mermaid fill colours of the statuses above (light, so the labels stay readable)
_MERMAID_CLASS = {"completed": "fill:#d8f3dc,stroke:#2d6a4f", "failed": "fill:#ffd6d6,stroke:#c1121f",
                  "running": "fill:#d7f0ff,stroke:#0077b6", "waiting": "fill:#fff3bf,stroke:#e09f3e",
                  "caught": "fill:#fff3bf,stroke:#e09f3e", "not run": "fill:#f1f1f1,stroke:#adb5bd",
                  "cancelled": "fill:#f3d9fa,stroke:#9c36b5", "skipped": "fill:#f1f1f1,stroke:#adb5bd"}


def _no_marks(stmt: object) -> None:
    return None


# --- shared wording -----------------------------------------------------------------


def format_duration(ms: int) -> str:
    """Exact, as written in the DSL: 2s, 1m30s, 1s500ms, 1d12h (0 is 0s)."""
    parts = []
    for unit, size in _UNITS:
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _short(text: str, limit: int) -> str:
    """One line (a bracketed expression may span several), at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _arg(expr: ir.Expr, basename: bool = False) -> str:
    """An argv element as a reader would type it: a plain string literal loses its quotes."""
    source = expr.source.strip()
    if source[:1] in "\"'" and len(source) >= 2 and source[-1] == source[0]:
        inner = source[1:-1]
        if inner and not any(c.isspace() or c in "\"'\\{}" for c in inner):
            return (os.path.basename(inner) or inner) if basename else inner
    return source


def _command(argv: tuple, limit: int, basename: bool = False) -> str:
    return _short(" ".join(_arg(e, basename) for e in argv), limit)


def _catch_label(catch: ir.Catch) -> str:
    if catch.match == "any":
        return "catch"
    values = ", ".join(json.dumps(v) if isinstance(v, str) else str(v) for v in catch.values)
    return f"catch {catch.match} {values}" if values else f"catch {catch.match}"


def _notes(parts: list[str]) -> str:
    return f" ({', '.join(parts)})" if parts else ""


def _first(stmt: ir.Parallel | ir.For) -> list[str]:
    if stmt.first is None:
        return []
    return [f"first {stmt.first}"] + (["keep rest"] if stmt.keep_rest else [])


def _loop_label(stmt: object, limit: int) -> str:
    """The head of a for, signal for or while loop, or of a repeat, with its bounds."""
    if isinstance(stmt, ir.For):
        parallel = [f"parallel {stmt.concurrency}"] if stmt.concurrency > 1 else []
        return f"for {stmt.var} in {_short(stmt.items.source, limit)}{_notes(parallel + _first(stmt))}"
    if isinstance(stmt, ir.SignalLoop):
        notes = [f"until signal {stmt.close_signal}"] if stmt.close_signal else []
        notes += [f"until {_short(stmt.until.source, limit)}"] if stmt.until is not None else []
        notes += [f"max {stmt.max_iterations}"] + ([f"parallel {stmt.concurrency}"] if stmt.concurrency > 1 else [])
        return f"for {stmt.var} in signal {stmt.signal}{_notes(notes)}"
    if isinstance(stmt, ir.While):
        return f"while {_short(stmt.condition.source, limit)}{_notes([f'max {stmt.max_iterations}'])}"
    assert isinstance(stmt, ir.Repeat)
    return f"repeat{_notes([f'max {stmt.max_iterations}'])}"


def _parallel_label(stmt: ir.Parallel) -> tuple[str, str]:
    """(word, notes): ``race`` / ``parallel`` and what it waits for."""
    if stmt.race:
        return "race", " (first wins)"
    return "parallel", _notes(_first(stmt))


def _branch_label(stmt: ir.Parallel, index: int, limit: int) -> str:
    condition = stmt.conditions[index] if stmt.conditions and index < len(stmt.conditions) else None
    return f"branch {index + 1}" + (f" if {_short(condition.source, limit)}" if condition is not None else "")


def _lock_label(stmt: ir.Lock, limit: int) -> str:
    return f"lock {_short(stmt.name.source, limit)}" + (" (global)" if stmt.scope == "home" else "")


def _handler_label(handler: ir.Handler) -> str:
    return f"on signal {handler.signal}" + (f" as {handler.var}" if handler.var else "")


def _scope_label(stmt: ir.Scope) -> str:
    return "handle signals " + ", ".join(dict.fromkeys(h.signal for h in stmt.handlers))


def _step_action(stmt: ir.Step, limit: int, basename: bool = False) -> str:
    if isinstance(stmt, ir.Activity) and stmt.call is not None:
        args = ", ".join(f"{name}={expr.source}" for name, expr in stmt.call.kwargs)
        return "call " + _short(f"{stmt.call.target.replace(':', '.')}({args})", limit)
    if isinstance(stmt, ir.Activity):
        return "run " + _command(stmt.argv, limit, basename)
    if isinstance(stmt, ir.WaitSignal):
        return f"wait signal {stmt.signal}"
    return f"child flow {stmt.flow}" + (" detached" if stmt.detached else "")


def _step_options(stmt: ir.Step) -> list[str]:
    options = []
    if isinstance(stmt, ir.Activity):
        if stmt.timeout_ms != DEFAULT_TIMEOUT_MS:
            options.append(f"timeout {format_duration(stmt.timeout_ms)}")
        if stmt.total_timeout_ms is not None:
            options.append(f"total {format_duration(stmt.total_timeout_ms)}")
        if stmt.retry.max_attempts > 1:
            jitter = f" jitter {stmt.retry.jitter * 100:g}%" if stmt.retry.jitter else ""
            options.append(f"retry {stmt.retry.max_attempts - 1}{jitter}")
            final = [f"exit {', '.join(map(str, stmt.retry.no_retry_exit))}"] if stmt.retry.no_retry_exit else []
            final += ["error " + ", ".join(json.dumps(t) for t in stmt.retry.no_retry_errors)] \
                if stmt.retry.no_retry_errors else []
            if final:
                options.append("no retry on " + " or ".join(final))
        if stmt.undo:
            options.append("undo " + _command(stmt.undo, _TREE_EXPR // 2))
    elif isinstance(stmt, ir.WaitSignal) and stmt.timeout_ms is not None:
        options.append(f"timeout {format_duration(stmt.timeout_ms)}")
    elif isinstance(stmt, ir.ChildFlow) and stmt.input is not None:
        options.append("input " + _short(stmt.input.source, _TREE_EXPR // 2))
    return options


def _simple_label(stmt: object, limit: int) -> str:
    """Sleep, set, return, fail, or (for IR added later) the node's type name."""
    if isinstance(stmt, ir.Sleep) and stmt.until is not None:
        return f"sleep until {_short(stmt.until.source, limit)}"
    if isinstance(stmt, ir.Sleep):
        return f"sleep {format_duration(stmt.duration_ms)}"
    if isinstance(stmt, ir.Set):
        return f"set {stmt.name} = {_short(stmt.value.source, limit)}"
    if isinstance(stmt, ir.Return):
        return f"return {_short(stmt.value.source, limit)}"
    if isinstance(stmt, ir.Fail):
        return f"fail {_short(stmt.message.source, limit)}"
    return type(stmt).__name__.lower()


# --- the rich tree ------------------------------------------------------------------


def flow_tree(flow: ir.Flow, marks: Union[Marks, None] = None) -> Tree:
    """``flow Name (inputs: ...)`` with one node per statement, blocks nested under their statement;
    with ``marks``, each statement's mark after its label."""
    tree = Tree(_root_label(flow), guide_style=_DIM)
    _add_block(tree, flow.body, marks or _no_marks)
    return tree


def _marked(label: Text, stmt: object, marks: Marks) -> Text:
    mark = marks(stmt)
    if mark is not None:
        label.append(f"  [{mark.text}]", style=MARK_STYLE.get(mark.status, ""))
    return label


def _root_label(flow: ir.Flow) -> Text:
    label = Text.assemble(("flow ", _KEYWORD), (flow.name, _NAME))
    notes = []
    if flow.inputs:
        notes.append("inputs: " + ", ".join(
            i.name if i.default is None else f"{i.name}={_short(i.default.source, 30)}" for i in flow.inputs))
    if flow.timeout_ms is not None:
        notes.append(f"workflow timeout {format_duration(flow.timeout_ms)}")
    if notes:
        label.append(f" ({'; '.join(notes)})", style=_DIM)
    return label


def _add_block(parent: Tree, block: tuple, marks: Marks = _no_marks) -> None:
    for stmt in block:
        _add_statement(parent, stmt, marks)


def _add_labelled_block(parent: Tree, label: Text, block: tuple, marks: Marks = _no_marks) -> None:
    node = parent.add(label)
    _add_block(node, block, marks)
    if not block:
        node.add(Text("(empty)", style=_DIM))


def _add_statement(parent: Tree, stmt: object, marks: Marks = _no_marks) -> None:
    if isinstance(stmt, ir.If):
        head = Text.assemble(("if ", _KEYWORD), _short(stmt.branches[0].condition.source, _TREE_EXPR))
        node = parent.add(_marked(head, stmt, marks))
        for index, branch in enumerate(stmt.branches):
            head = Text("then", _KEYWORD) if index == 0 else Text.assemble(
                ("elif ", _KEYWORD), _short(branch.condition.source, _TREE_EXPR))
            _add_labelled_block(node, head, branch.body, marks)
        if stmt.orelse is not None:
            _add_labelled_block(node, Text("else", _KEYWORD), stmt.orelse, marks)
    elif isinstance(stmt, ir.Parallel):
        word, notes = _parallel_label(stmt)
        node = parent.add(_marked(Text.assemble((word, _KEYWORD), (notes, _DIM)), stmt, marks))
        for index, branch in enumerate(stmt.branches):
            _add_labelled_block(node, Text(_branch_label(stmt, index, _TREE_EXPR), _KEYWORD), branch, marks)
    elif isinstance(stmt, (ir.For, ir.SignalLoop, ir.While, ir.Repeat)):
        node = parent.add(_marked(Text(_loop_label(stmt, _TREE_EXPR), _KEYWORD), stmt, marks))
        _add_block(node, stmt.body, marks)
        if isinstance(stmt, ir.Repeat):
            node.add(Text.assemble(("until ", _KEYWORD), _short(stmt.until.source, _TREE_EXPR)))
    elif isinstance(stmt, ir.Lock):
        label = _marked(Text(_lock_label(stmt, _TREE_EXPR), _KEYWORD), stmt, marks)
        _add_labelled_block(parent, label, stmt.body, marks)
    elif isinstance(stmt, ir.Scope):
        node = parent.add(_marked(Text(_scope_label(stmt), _KEYWORD), stmt, marks))
        for handler in stmt.handlers:
            _add_labelled_block(node, Text(_handler_label(handler), _KEYWORD), handler.body, marks)
        _add_labelled_block(node, Text("while running", _KEYWORD), stmt.body, marks)
    elif isinstance(stmt, ir.STEP_KINDS):
        node = parent.add(_marked(_step_label(stmt), stmt, marks))
        for catch in stmt.catches:
            _add_labelled_block(node, Text(_catch_label(catch), _KEYWORD), catch.body, marks)
    else:
        word, _, rest = _simple_label(stmt, _TREE_EXPR).partition(" ")
        parent.add(_marked(Text.assemble((word, _KEYWORD), f" {rest}" if rest else ""), stmt, marks))


def _step_label(stmt: ir.Step) -> Text:
    label = Text.assemble(("step ", _KEYWORD), (stmt.name, _NAME), ": ", _step_action(stmt, _TREE_EXPR))
    options = _step_options(stmt)
    if options:
        label.append(f" ({', '.join(options)})", style=_DIM)
    return label


# --- Mermaid ----------------------------------------------------------------------

_END = "<end>"  # stands for the End node until its id is known; never a valid node id


class _Open(NamedTuple):
    """An edge that leaves ``source`` and waits for the next node to point at."""

    source: str
    label: Union[str, None] = None
    dashed: bool = False


def flow_mermaid(flow: ir.Flow, marks: Union[Marks, None] = None) -> str:
    """A ``flowchart TD`` from Start to End: one node per statement, blocks as branches that re-join;
    with ``marks``, each statement's mark on a second line and a class per status."""
    chart = _Chart(marks or _no_marks)
    start = chart.node("Start")
    chart.connect(chart.block(flow.body, [_Open(start)]), _END)
    end = chart.node("End")
    lines = ["flowchart TD", f"    %% flow {flow.name}"]
    lines += [f"    {node}" for node in chart.nodes]
    for source, target, label, dashed in chart.edges:
        arrow = "-.->" if dashed else "-->"
        text = f"|{mermaid_escape(label, edge=True)}|" if label else ""
        lines.append(f"    {source} {arrow}{text} {end if target == _END else target}")
    for status, nodes in chart.classes.items():
        name = _class_name(status)
        lines.append(f"    classDef {name} {_MERMAID_CLASS.get(status, _MERMAID_CLASS['not run'])}")
        lines.append(f"    class {','.join(nodes)} {name}")
    return "\n".join(lines) + "\n"


def _class_name(status: str) -> str:
    return "st_" + "".join(c if c.isalnum() else "_" for c in status)


def mermaid_escape(text: str, edge: bool = False) -> str:
    """Entity codes for what Mermaid would read as syntax or HTML: ``"`` is #quot;, ``#`` is #35;.

    A node label is quoted, so only ``"`` ends it; an edge label (``|...|``) is
    not, and brackets or a pipe would end it too.
    """
    out = text.replace("#", "#35;").replace('"', "#quot;")
    for char in "<>|[](){}" if edge else "<>":
        out = out.replace(char, f"#{ord(char)};")
    return out


class _Loop(NamedTuple):
    """The edges that leave a loop's body early: ``break`` (to after the loop), ``continue`` (back to it)."""

    breaks: list[_Open]
    continues: list[_Open]


class _Chart:
    def __init__(self, marks: Marks = _no_marks) -> None:
        self.marks = marks
        self.classes: dict[str, list[str]] = {}  # status -> the nodes marked with it
        self.nodes: list[str] = []
        self.edges: list[tuple[str, str, Union[str, None], bool]] = []
        self.loops: list[_Loop] = []  # the loops around the statement being drawn, innermost last

    def node(self, label: str, decision: bool = False, stmt: object = None) -> str:
        node_id = f"n{len(self.nodes) + 1}"
        text = mermaid_escape(label)
        mark = self.marks(stmt) if stmt is not None else None
        if mark is not None:  # (the one piece of markup we write ourselves: the mark's own line)
            text += "<br/>" + mermaid_escape(mark.text)
            self.classes.setdefault(mark.status, []).append(node_id)
        self.nodes.append(f'{node_id}{{"{text}"}}' if decision else f'{node_id}["{text}"]')
        return node_id

    def connect(self, opens: list[_Open], target: str, label: Union[str, None] = None) -> None:
        """Point every open edge at ``target``; a label given here is added to the edge's own."""
        for edge in opens:
            text = ", ".join(part for part in (edge.label, label) if part) or None
            self.edges.append((edge.source, target, text, edge.dashed))

    def block(self, block: tuple, opens: list[_Open]) -> list[_Open]:
        for stmt in block:
            opens = self.statement(stmt, opens)
        return opens

    def statement(self, stmt: object, opens: list[_Open]) -> list[_Open]:
        if isinstance(stmt, ir.If):
            return self._if(stmt, opens)
        if isinstance(stmt, ir.Parallel):
            return self._parallel(stmt, opens)
        if isinstance(stmt, ir.For):
            return self._loop(stmt, opens, "each item", "next item", "done")
        if isinstance(stmt, ir.SignalLoop):
            return self._loop(stmt, opens, "each signal", "next signal", "closed")
        if isinstance(stmt, ir.While):
            return self._loop(stmt, opens, "yes", "again", "no")
        if isinstance(stmt, ir.Repeat):
            return self._repeat(stmt, opens)
        if isinstance(stmt, ir.Lock):
            return self._lock(stmt, opens)
        if isinstance(stmt, ir.Scope):
            return self._scope(stmt, opens)
        if isinstance(stmt, ir.STEP_KINDS):
            node = self.node(f"step {stmt.name}: {_step_action(stmt, _CHART_TEXT, basename=True)}", stmt=stmt)
        else:
            node = self.node(_simple_label(stmt, _CHART_TEXT), stmt=stmt)
        self.connect(opens, node)
        if isinstance(stmt, (ir.Return, ir.Fail)):
            self.connect([_Open(node)], _END)
            return []
        if isinstance(stmt, (ir.Break, ir.Continue)):
            if self.loops:
                jumps = self.loops[-1].breaks if isinstance(stmt, ir.Break) else self.loops[-1].continues
                jumps.append(_Open(node))
            return []
        after = [_Open(node)]
        for catch in getattr(stmt, "catches", ()):
            after += self.block(catch.body, [_Open(node, _catch_label(catch), dashed=True)])
        return after

    def _if(self, stmt: ir.If, opens: list[_Open]) -> list[_Open]:
        decision = self.node(_short(stmt.branches[0].condition.source, _CHART_TEXT), decision=True, stmt=stmt)
        self.connect(opens, decision)
        after: list[_Open] = []
        for index, branch in enumerate(stmt.branches):
            label = "yes" if index == 0 else f"elif {_short(branch.condition.source, _CHART_TEXT)}"
            after += self.block(branch.body, [_Open(decision, label)])
        if stmt.orelse is not None:
            after += self.block(stmt.orelse, [_Open(decision, "else")])
        else:
            after.append(_Open(decision, "no" if len(stmt.branches) == 1 else "else"))
        return after

    def _parallel(self, stmt: ir.Parallel, opens: list[_Open]) -> list[_Open]:
        word, notes = _parallel_label(stmt)
        fork = self.node(word + notes, stmt=stmt)
        self.connect(opens, fork)
        ends = [self.block(branch, [_Open(fork, _branch_label(stmt, i, _CHART_TEXT))])
                for i, branch in enumerate(stmt.branches)]
        if not any(ends):
            return []  # every branch returns or fails: nothing re-joins
        if stmt.race:
            joined = "first branch done"
        elif stmt.first is not None:
            joined = f"first {stmt.first} {'branch' if stmt.first == 1 else 'branches'} done" \
                + (" (the rest keep running)" if stmt.keep_rest else "")
        else:
            joined = "all branches done"
        join = self.node(joined)
        for branch_end in ends:
            self.connect(branch_end, join)
        return [_Open(join)]

    def _body(self, body: tuple, opens: list[_Open]) -> tuple[list[_Open], _Loop]:
        """A loop body's open ends, and its breaks and continues."""
        self.loops.append(_Loop([], []))
        try:
            return self.block(body, opens), self.loops[-1]
        finally:
            self.loops.pop()

    def _loop(self, stmt: object, opens: list[_Open], each: str, again: str, done: str) -> list[_Open]:
        """for, signal for and while: a decision the body goes back to."""
        loop = self.node(_loop_label(stmt, _CHART_TEXT), decision=True, stmt=stmt)
        self.connect(opens, loop)
        ends, jumps = self._body(stmt.body, [_Open(loop, each)])  # type: ignore[attr-defined]
        self.connect(ends + jumps.continues, loop, again)
        return [_Open(loop, done)] + jumps.breaks

    def _repeat(self, stmt: ir.Repeat, opens: list[_Open]) -> list[_Open]:
        """The body first, then the until test: back to the body until it holds."""
        start = self.node(_loop_label(stmt, _CHART_TEXT), stmt=stmt)
        self.connect(opens, start)
        ends, jumps = self._body(stmt.body, [_Open(start)])
        if not ends and not jumps.continues:
            return jumps.breaks  # the body never reaches its test
        test = self.node(f"until {_short(stmt.until.source, _CHART_TEXT)}", decision=True)
        self.connect(ends + jumps.continues, test)
        self.connect([_Open(test, "no")], start)
        return [_Open(test, "yes")] + jumps.breaks

    def _lock(self, stmt: ir.Lock, opens: list[_Open]) -> list[_Open]:
        lock = self.node(_lock_label(stmt, _CHART_TEXT), stmt=stmt)
        self.connect(opens, lock)
        ends = self.block(stmt.body, [_Open(lock)])
        if not ends:
            return []
        release = self.node(f"unlock {_short(stmt.name.source, _CHART_TEXT)}")
        self.connect(ends, release)
        return [_Open(release)]

    def _scope(self, stmt: ir.Scope, opens: list[_Open]) -> list[_Open]:
        """The scope's node leads to its body; each handler hangs off it (dashed), like a catch."""
        scope = self.node(_scope_label(stmt), stmt=stmt)
        self.connect(opens, scope)
        after = self.block(stmt.body, [_Open(scope)])
        for handler in stmt.handlers:
            after += self.block(handler.body, [_Open(scope, _handler_label(handler), dashed=True)])
        return after
