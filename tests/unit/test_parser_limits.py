"""Limits of the DSL: deep nesting, NUL bytes and empty files are positioned errors, never crashes.

Blocks nest at most ``MAX_NESTING`` levels (docs/dsl.md, *Limits*); past that, and for
expressions nested thousands deep, the parser reports a FlowSyntaxError with a
``file:line:col`` Diagnostic instead of letting a RecursionError escape from the parser,
the checks, ``ir.to_json``/``from_json`` or the engine.
"""

from __future__ import annotations

import json

import pytest

from localflow import ir
from localflow.dsl import load_flow_file, parse_flow
from localflow.dsl.parser import MAX_NESTING
from localflow.errors import FlowSyntaxError

FILE = "flows/Deep.flow"
KINDS = ("if", "else", "for", "parallel", "race", "catch")


def deep_flow(levels: int, kind: str = "if", step: int = 2, inner: str = "sleep 0s") -> str:
    """A flow whose innermost lines (``inner``) sit inside ``levels`` nested blocks of one ``kind``."""
    lines, indent = ["flow Deep"], step
    for level in range(levels):
        pad = " " * indent
        if kind == "if":
            lines.append(f"{pad}if true:")
        elif kind == "else":
            lines += [f"{pad}if false:", f"{pad}{' ' * step}sleep 0s", f"{pad}else:"]
        elif kind == "for":
            lines.append(f"{pad}for i{level} in [1]:")
        elif kind in ("parallel", "race"):
            lines.append(f"{pad}{kind}:")
            if kind == "race":
                lines += [f"{pad}{' ' * step}branch:", f"{pad}{' ' * 2 * step}sleep 1s"]
            lines.append(f"{pad}{' ' * step}branch:")
            indent += step
        else:
            lines += [f"{pad}step s{level}:", f'{pad}{" " * step}run ["false"]', f"{pad}{' ' * step}catch:"]
            indent += step
        indent += step
    lines += [" " * indent + line for line in inner.split("\n")]
    return "\n".join(lines) + "\n"


def errors_of(text: str) -> FlowSyntaxError:
    with pytest.raises(FlowSyntaxError) as info:
        parse_flow(text, FILE)
    return info.value


# --- nesting of blocks ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_blocks_nested_to_the_limit_parse_and_their_ir_round_trips(kind):
    flow = parse_flow(deep_flow(MAX_NESTING, kind), FILE)

    pinned = json.loads(json.dumps(ir.to_json(flow)))
    assert ir.from_json(pinned) == flow
    assert sum(1 for s in ir.walk(flow.body) if isinstance(s, ir.Sleep) and s.duration_ms == 0) >= 1


@pytest.mark.parametrize("kind", KINDS)
def test_one_block_past_the_limit_is_reported_at_its_first_line(kind):
    text = deep_flow(MAX_NESTING + 1, kind)
    error = errors_of(text)

    # else and race also put a block beside the innermost one at the same depth: reported too
    assert len(error.diagnostics) == (2 if kind in ("else", "race") else 1)
    assert all("nested too deeply" in d.message for d in error.diagnostics)
    d = error.diagnostics[-1]
    lines = text.splitlines()
    assert (d.line, d.col) == (len(lines), len(lines[-1]) - len(lines[-1].lstrip()) + 1)
    assert d.message.startswith(f"blocks are nested too deeply: a flow may nest at most {MAX_NESTING} levels")
    assert d.render().startswith(f"{FILE}:{d.line}:{d.col}: blocks are nested too deeply")
    assert d.source_line.strip() == "sleep 0s"


@pytest.mark.parametrize("levels", [200, 280, 1000])
def test_very_deep_blocks_are_a_syntax_error_not_a_recursion_error(levels):
    # 200 used to pass the checks and crash `lf start`; 280 crashed `lf validate` too.
    error = errors_of(deep_flow(levels, "if", step=1))

    assert [d.line for d in error.diagnostics] == [MAX_NESTING + 3]  # the header, then one `if` per line
    assert "nested too deeply" in error.first.message


def test_the_nesting_limit_is_reported_without_false_scope_errors():
    # The too-deep block is left out of the IR, so its step is unknown to the checks: they must not run.
    text = deep_flow(MAX_NESTING + 1, inner='step deep:\n  run ["true"]') + "  return deep.result\n"
    error = errors_of(text)

    assert [d.message.split(":")[0] for d in error.diagnostics] == ["blocks are nested too deeply"]


def test_deep_nesting_in_a_flow_file_is_a_syntax_error(tmp_path):
    path = tmp_path / "Deep.flow"
    path.write_text(deep_flow(400, "for", step=1))

    with pytest.raises(FlowSyntaxError) as info:
        load_flow_file(path, "flows/Deep.flow")
    assert info.value.first.render().startswith(f"flows/Deep.flow:{MAX_NESTING + 3}:{MAX_NESTING + 3}: ")


# --- nesting of expressions ------------------------------------------------------------

DEEP_EXPRESSIONS = {
    "parentheses": "(" * 10_000 + "1" + ")" * 10_000,
    "lists": "[" * 10_000 + "1" + "]" * 10_000,
    "objects": '{"a": ' * 10_000 + "1" + "}" * 10_000,
    "calls": "len(" * 10_000 + "[]" + ")" * 10_000,
    "negation": "-" * 10_000 + "1",
    "not": "not " * 10_000 + "true",
    "attributes": "x" + ".a" * 10_000,
    "subscripts": "x" + "[0]" * 10_000,
    "sums": " + ".join(["1"] * 10_000),
    "conditionals": "1 if true else " * 5_000 + "1",
}


@pytest.mark.parametrize("source", DEEP_EXPRESSIONS.values(), ids=DEEP_EXPRESSIONS.keys())
def test_deeply_nested_expressions_are_syntax_errors(source):
    error = errors_of(f"flow Deep\n  input x = 1\n  return {source}\n")

    d = error.first
    assert d.line == 3 and d.col >= 10
    assert "nested" in d.message, d.message


def test_a_deep_expression_inside_the_deepest_block_is_a_syntax_error():
    error = errors_of(deep_flow(MAX_NESTING, inner="return " + "[" * 10_000 + "]" * 10_000))

    assert error.first.line == MAX_NESTING + 2 and "nested" in error.first.message


# --- a pinned flow read back from a history ---------------------------------------------


def _nested_json(levels: int) -> dict:
    body: list = [{"kind": "Sleep", "id": "sleep-1", "duration_ms": 0, "line": 3, "col": 5}]
    for level in range(levels):
        branch = {"kind": "IfBranch", "condition": {"kind": "Expr", "source": "true", "line": 2, "col": 6},
                  "body": body, "line": 2, "col": 3}
        body = [{"kind": "If", "id": f"if-{level + 1}", "branches": [branch], "orelse": None, "line": 2, "col": 3}]
    return {"kind": "Flow", "name": "Deep", "inputs": [], "body": body, "file": FILE, "timeout_ms": None}


@pytest.mark.parametrize("levels", [300, 5_000])
def test_a_deeply_nested_pinned_flow_is_a_value_error_not_a_recursion_error(levels):
    with pytest.raises(ValueError, match="nested more than"):
        ir.from_json(_nested_json(levels))


@pytest.mark.parametrize("node", [{"kind": "Nope"}, {"kind": ["If"]}, {"kind": "Sleep", "id": "sleep-1"},
                                  {"kind": "Sleep", "id": "s", "duration_ms": 0, "extra": 1}])
def test_a_pinned_flow_that_is_not_ir_is_a_value_error(node):
    data = _nested_json(1)
    data["body"] = [node]
    with pytest.raises(ValueError):
        ir.from_json(data)


def test_the_engine_reports_a_deeply_nested_pinned_flow_as_a_corrupt_history(tmp_path):
    from localflow.core import events as ev
    from localflow.engine import Engine
    from localflow.errors import HistoryCorruptError
    from localflow.store import history

    engine = Engine(tmp_path)
    engine.ensure_layout()
    started = ev.WorkflowStarted(seq=1, ts=0, workflow_id="deep", flow_name="Deep", flow_hash="0" * 64,
                                 flow_file=FILE, flow=_nested_json(100), flow_source="", input={})
    engine.paths.workflow_dir("deep").mkdir(parents=True)
    history.create(engine.paths.history("deep"), ev.to_record(started))

    with pytest.raises(HistoryCorruptError, match="history.jsonl:1: .*nested more than"):
        engine.load("deep")


# --- what is in the file -------------------------------------------------------------------


@pytest.mark.parametrize("text, line, col", [
    ("flow X\n  return \"a\x00b\"\n", 2, 12),
    ("\x00flow X\n", 1, 1),
    ("flow X\n  set a = 1\n  sle\x00ep 1s\n", 3, 6),
    ("flow X\r\n  sleep 1s\r\n  sleep 2s\x00\r\n", 3, 11),
], ids=["in a string", "first character", "in a keyword", "at a CRLF line end"])
def test_a_nul_byte_is_reported_where_it_is(text, line, col):
    error = errors_of(text)

    assert len(error.diagnostics) == 1
    rendered = error.first.render().splitlines()
    assert rendered[0] == f"{FILE}:{line}:{col}: the flow file contains a NUL byte"
    assert "\x00" not in error.first.render()
    assert rendered[2].index("^") - len("    ") + 1 == col


def test_a_nul_byte_in_a_flow_file_is_reported_where_it_is(tmp_path):
    path = tmp_path / "X.flow"
    path.write_bytes(b"flow X\n  return 1 + \x00 2\n")

    with pytest.raises(FlowSyntaxError) as info:
        load_flow_file(path, "flows/X.flow")
    assert str(info.value).splitlines()[0] == "flows/X.flow:2:14: the flow file contains a NUL byte"


@pytest.mark.parametrize("text", ["", "\n\n", "   \n\t\n", "\ufeff"], ids=["nothing", "newlines", "blanks", "bom"])
def test_an_empty_flow_file_says_it_is_empty(text):
    error = errors_of(text)

    assert [d.message for d in error.diagnostics] == [
        "the flow file is empty: start it with 'flow NAME' and indent the flow's statements under it"]


def test_a_flow_file_of_only_comments_says_it_is_empty():
    error = errors_of("# a flow, some day\n\n   # nothing yet\n")

    assert len(error.diagnostics) == 1
    assert error.first.render().startswith(f"{FILE}:1:1: the flow file is empty (only blank lines and comments)")
