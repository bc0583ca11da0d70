"""Hostile flow files through every entry point that reads one: `lf validate FILE`, `lf graph FILE`,
`lf start FILE`, and a ``.flow`` dropped into flows/ while a supervisor runs (supervisor/dropfolder.py).

The files: random bytes (not UTF-8, NUL bytes, a BOM, CR/LF mixes), random token soup from the
DSL's own words (so the parser gets far before it fails), damaged versions of the repository's
example flows, and files built to exhaust something (10,000 nested blocks, a 100,000-deep
expression, a 1 MB line, a file larger than one history line).

Whatever the file: validate and graph exit 0 or 2 and, on 2, every line of their report that
names a place names it ``file:line:col``; start exits 0, 1 or 2, never a traceback, and a failed start
leaves no workflow; the drop folder reports a file that does not parse and starts nothing from it.
Nothing writes outside the home, and validate and graph write nothing at all.
(tests/unit/test_dsl_patterns_fuzz.py and test_dsl_errors.py fuzz the parser itself.)
"""

from __future__ import annotations

import os
import random
import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test_fuzz_entry_points import REPO, World, assert_documented, fuzz_settings

from localflow.core.jsonvalue import MAX_EVENT_BYTES
from localflow.dsl.parser import KEYWORDS, MAX_NESTING, STATEMENTS
from localflow.engine import Engine
from localflow.supervisor.dropfolder import DropFolder

WORDS = sorted(KEYWORDS | set(STATEMENTS) | {
    "every", "backoff", "max", "jitter", "no", "on", "exit", "heartbeat", "env", "cwd", "secret", "concurrency",
    "defaults", "until", "while", "repeat", "break", "continue", "first", "keep", "rest", "signals", "lock",
    "global", "detached", "as", "total", "call", "flow", "X", "x", "a", "b", "items", "len", "str", "sorted", "keys",
})
PUNCTUATION = [":", "=", "==", "[", "]", "{", "}", "(", ")", ",", ".", '"x"', "'y'", '"', "1", "0", "-1", "1.5",
               "1s", "500ms", "2x", "50%", "#", "+", "*", "/", "%", "<", ">=", "f\"{x}\"", '"""', "\\", "$", "@",
               "1e999", "9" * 50, "secret(\"K\")", "[\"true\"]", "[\"echo\", x]"]
EXAMPLES = sorted(p for p in (REPO / "flows").rglob("*.flow"))


def _token_soup(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 14))):
        indent = draw(st.sampled_from(["", "  ", "    ", "      ", "\t", " "]))
        tokens = draw(st.lists(st.sampled_from(WORDS) | st.sampled_from(PUNCTUATION), min_size=1, max_size=8))
        lines.append(indent + " ".join(tokens) + draw(st.sampled_from(["", ":", " # c"])))
    head = draw(st.sampled_from(["flow X\n", "flow X:\n", "", "flow\n", "flow X Y\n"]))
    return head + draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines) + "\n"


KINDS = {"soup": "token soup", "bytes": "random bytes", "text": "random text", "mutant": "mutated example",
         "encoding": "re-encoded example"}


@st.composite
def flow_files(draw, kind: str = "") -> tuple[str, bytes]:
    kind = kind or draw(st.sampled_from(sorted(KINDS)))
    if kind == "soup":
        return "token soup", _token_soup(draw).encode()
    if kind == "bytes":
        return "random bytes", draw(st.binary(max_size=400))
    if kind == "text":
        return "random text", ("flow X\n" + draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
                               ).encode()
    source = EXAMPLES[draw(st.integers(0, len(EXAMPLES) - 1))].read_bytes().replace(
        b"flow " + EXAMPLES[0].stem.encode(), b"flow X")
    source = b"flow X" + source[source.index(b"\n"):] if source.startswith(b"flow ") else source
    if kind == "encoding":
        return "re-encoded example", draw(st.sampled_from([
            b"\xef\xbb\xbf" + source, source.replace(b"\n", b"\r\n"), source.replace(b"\n", b"\r"),
            source.replace(b"  ", b"\t"), source.decode().encode("utf-16"), source.decode().encode("latin-1", "replace"),
            source + b"\x00", source[: len(source) // 2], source.replace(b"\n", b"\n\x0c"), source.replace(b" ", b"\xa0"),
        ]))
    rng = random.Random(draw(st.integers(0, 2**32)))
    data = bytearray(source)
    for _ in range(draw(st.integers(1, 6))):
        op = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            del data[at:at + rng.randrange(1, 20)]
        elif op == 1:
            data[at:at] = rng.choice([w.encode() for w in WORDS + PUNCTUATION] + [b"\n", b"  ", b"\t", b"\x00", b"\xff"])
        elif op == 2 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 3:
            lines = bytes(data).split(b"\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
        else:
            lines = bytes(data).split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[rng.randrange(len(lines))])
            data = bytearray(b"\n".join(lines))
    return "mutated example", bytes(data)


def _home_tree(home: Path) -> dict:
    return {str(p): (p.stat().st_size if p.is_file() else "dir") for p in home.rglob("*")}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    w = World(tmp_path_factory.mktemp("fuzz-flows"))
    (w.home / "flows").mkdir()
    Engine(w.home).ensure_layout()
    return w


COUNTS: dict[str, int] = {}


def _validate_report_is_positioned(outcome, file: str) -> None:
    """Every diagnostic of `lf validate` is ``FILE:LINE:COL: message``, then its source line and a caret."""
    lines = outcome.err.splitlines()
    heads = [line for line in lines if not line.startswith("    ") and not re.fullmatch(r"\d+ errors? in \d+ files?", line)]
    for head in heads:
        assert re.match(r"(\S*/)?X\.flow:\d+:\d+: \S", head), f"not file:line:col: {head!r}\n{outcome}"


@pytest.mark.parametrize("kind", sorted(KINDS))
@fuzz_settings(40)
@given(data=st.data())
def test_validate_graph_and_start_read_any_file_and_answer_in_one_documented_way(world, kind, data):
    case = data.draw(flow_files(kind))
    kind, data = case
    COUNTS[kind] = COUNTS.get(kind, 0) + 1
    path = world.home / "flows" / "X.flow"
    path.write_bytes(data)
    before = _home_tree(world.home)
    validated = world.lf("validate", str(path))
    assert_documented(validated, {0, 2})
    _validate_report_is_positioned(validated, str(path))
    graphed = world.lf("graph", str(path))
    assert_documented(graphed, {0, 2})
    assert (graphed.code == 0) == (validated.code == 0), f"{validated}\n{graphed}"
    assert _home_tree(world.home) == before, "validate or graph wrote something"
    started = world.lf("start", str(path))
    assert_documented(started, {0, 2, 5, 6})
    workflows = {n for n in world.workflow_entries()}
    if started.code == 0:
        assert validated.code == 0 and len(workflows) == 1, str(started)
        for workflow_id in workflows:
            shutil.rmtree(world.home / "var" / "workflows" / workflow_id)
    else:
        assert workflows == set(), f"a failed start left {workflows}: {started}"
    world.assert_outside_untouched(case)


def _folder(world: World) -> SimpleNamespace:
    engine = Engine(world.home)
    logs: list[str] = []
    started: list[str] = []
    return SimpleNamespace(engine=engine, logs=logs, started=started,
                           drops=DropFolder(engine, logs.append, started.append))


@fuzz_settings(60)
@given(case=flow_files())
def test_a_dropped_flow_file_that_does_not_parse_is_reported_once_and_starts_nothing(world, case):
    kind, data = case
    path = world.home / "flows" / "Dropped.flow"
    path.write_bytes(data.replace(b"flow X", b"flow Dropped"))
    past = time.time() - 60
    os.utime(path, (past, past))
    folder = _folder(world)
    try:
        folder.drops.handle(path)
        folder.drops.handle(path)  # a rescan: said once, not again
        registered = world.home / "var" / "registry" / "Dropped.json"
        if folder.started:  # it parsed and has every input's default: one workflow, and it is registered
            assert registered.is_file() and len(folder.started) == 1
        else:
            assert not world.workflow_entries(), folder.logs
        problems = [line for line in folder.logs if "does not parse" in line]
        assert len(problems) <= 1 and (not problems or not registered.exists()), folder.logs
        assert all("Traceback" not in line for line in folder.logs)
    finally:
        path.unlink()
        (world.home / "var" / "registry" / "Dropped.json").unlink(missing_ok=True)
        for workflow_id in world.workflow_entries():
            shutil.rmtree(world.home / "var" / "workflows" / workflow_id)
    world.assert_outside_untouched(case)


# --- files built to exhaust something ----------------------------------------------------------------------

EXHAUSTING = {
    "1,000 nested ifs": "flow X\n" + "".join(" " * (i + 1) + "if true:\n" for i in range(1000)) + " " * 1001 + "sleep 1s\n",
    f"{MAX_NESTING + 1} nested ifs": "flow X\n" + "".join("  " * (i + 1) + "if true:\n" for i in range(MAX_NESTING + 1))
                                     + "  " * (MAX_NESTING + 2) + "sleep 1s\n",
    "100,000-deep parentheses": "flow X\n  return " + "(" * 100_000 + "1" + ")" * 100_000 + "\n",
    "100,000-deep list": "flow X\n  return " + "[" * 100_000 + "]" * 100_000 + "\n",
    "100,000 unary minus": "flow X\n  return " + "-" * 100_000 + "1\n",
    "100,000 chained plus": "flow X\n  return " + "+".join(["1"] * 100_000) + "\n",
    "1 MB line": "flow X\n  return \"" + "x" * 1_000_000 + "\"\n",
    "100,000 steps": "flow X\n" + "".join(f"  step s{i}:\n    run [\"true\"]\n" for i in range(20_000)),
    "a huge number": "flow X\n  return " + "9" * 100_000 + "\n",
    "a huge duration": "flow X\n  sleep " + "9" * 100 + "s\n",
    "a huge retry": "flow X\n  step s:\n    run [\"true\"]\n    retry " + "9" * 100 + " every 1s\n",
    "a huge while max": "flow X\n  while true max " + "9" * 100 + ":\n    sleep 1s\n",
    "an unterminated triple quote": "flow X\n  return \"\"\"" + "x\n" * 10_000,
    "10,000 open brackets": "flow X\n  return " + "[" * 10_000 + "\n",
    "a flow larger than a history line": "flow X\n  return 1\n" + "# " + "x" * MAX_EVENT_BYTES + "\n",
}


@pytest.mark.parametrize("name", list(EXHAUSTING))
def test_a_file_built_to_exhaust_the_parser_is_refused_or_taken_in_one_documented_way(world, name):
    path = world.home / "flows" / "X.flow"
    path.write_text(EXHAUSTING[name])
    started_at = time.monotonic()
    validated = world.lf("validate", str(path))
    assert_documented(validated, {0, 2})
    started = world.lf("start", str(path))
    assert_documented(started, {0, 2, 5, 6})
    assert time.monotonic() - started_at < 30, "took too long"
    if started.code == 0:
        for workflow_id in world.workflow_entries():
            shutil.rmtree(world.home / "var" / "workflows" / workflow_id)
    else:
        assert world.workflow_entries() == set(), str(started)
    if name == "a flow larger than a history line":
        assert validated.code == 0 and started.code == 2 and "over the limit" in started.err, str(started)
    world.assert_outside_untouched(name)


def test_validate_writes_a_control_character_of_the_file_as_an_escape(world):
    path = world.home / "flows" / "X.flow"
    path.write_bytes(b"flow X\n  step \x1b[2J:\n")
    validated = world.lf("validate", str(path))
    assert_documented(validated, {2})
    assert "\\x1b[2J" in validated.err and "\x1b" not in validated.err


def test_report_the_classes_tried():
    """Not a check: how many files of each class the fuzzing above tried (pytest -s)."""
    for what, count in sorted(COUNTS.items()):
        print(f"  {count:5d}  {what}")
