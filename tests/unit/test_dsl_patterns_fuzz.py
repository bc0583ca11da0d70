"""Fuzzing the Workflow Patterns constructs of the DSL: whatever the text, the parser never raises
anything but a FlowSyntaxError whose every diagnostic is positioned in the file.

Two sources of text: random edits of a flow that uses every new construct (pieces of the new
syntax spliced in anywhere), and random flows generated from the grammar (while, repeat/until,
break/continue, signal loops, lock, handlers, parallel first/keep rest, branch if, detached
steps), sometimes damaged. A flow that does parse also round-trips through its JSON, passes
``check_flow`` again from the IR alone, and can be drawn by ``lf graph``.
"""

from __future__ import annotations

import io
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from localflow import ir
from localflow.cli.graph_render import flow_mermaid, flow_tree
from localflow.dsl import checks, parse_flow
from localflow.errors import FlowSyntaxError

FILE = "flows/X.flow"

EVERY_PATTERN = """\
flow Patterns
  input items = ["a", "b"]
  on signal stop as why:
    set stopped = why
  on signal poke:
    sleep 1s
  set n = 0
  while n < 3 max 10:
    set n = n + 1
    if n == 2:
      continue
  repeat max 5:
    step poll:
      run ["poll.sh", n]
  until poll.result.done
  for order in signal order until signal done max 100 parallel 2:
    lock f"customer-{order.id}" global:
      step handle:
        run ["handle.sh", order.id]
    if order.last:
      break
  for note in signals note until n > 5:
    sleep 1s
  parallel first 1 keep rest:
    branch if n > 1:
      step quote_a:
        run ["quote.sh", "a"]
    branch:
      sleep 2s
  for item in items parallel 2 first 1 keep rest:
    lock "printer":
      step print:
        run ["print.sh", item]
  step kid:
    flow Child detached
    input {"n": n}
  step approval:
    wait signal approve timeout 1m
    catch timeout:
      set late = true
  return {"n": n, "ended": approval.ended, "kid": kid.result.workflow_id}
"""
PIECES = ["while ", "repeat:", "repeat max 3:", "until ", "until true", "break", "continue", "lock ", " global",
          "on signal ", " as ", " max ", " max 0", " first ", " first 9", " keep rest", " keep", "branch if ",
          "branch:", " detached", "for x in signal ", " signals ", " until signal ", " parallel ", "parallel first 2:",
          "race:", ":", "\n", "\n  ", "\n    ", "\n      ", "  ", "(", ")", "\"", "f\"{", "#", "\t", "x", "é",
          "1", "0", "step s:", "run [\"a\"]", "wait signal go", "flow Y", "catch:", "set ", "=", "lock", "on", "signal"]


def assert_parses_or_reports(text: str) -> ir.Flow | None:
    try:
        flow = parse_flow(text, FILE)
    except FlowSyntaxError as exc:
        lines = text.count("\n") + text.count("\r") + 2
        assert exc.diagnostics
        assert all(1 <= d.line <= lines and d.col >= 1 for d in exc.diagnostics)
        return None
    assert isinstance(flow, ir.Flow)
    pinned = ir.from_json(json.loads(json.dumps(ir.to_json(flow))))
    assert pinned == flow
    assert checks.check_flow(pinned) == []  # the IR alone is as valid as the text was
    Console(file=io.StringIO(), width=100).print(flow_tree(flow))
    assert flow_mermaid(flow).startswith("flowchart TD\n")
    return flow


def test_the_every_pattern_flow_itself_is_valid():
    flow = assert_parses_or_reports(EVERY_PATTERN)

    assert flow is not None
    kinds = {type(s).__name__ for s in ir.walk(flow.body)}
    assert {"While", "Repeat", "Break", "Continue", "SignalLoop", "Lock", "Scope"} <= kinds


@settings(max_examples=250, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(EVERY_PATTERN)), st.integers(0, 12), st.sampled_from(PIECES + [""])),
                min_size=1, max_size=6))
def test_mutated_pattern_flow_only_ever_raises_flow_syntax_error(edits):
    text = EVERY_PATTERN
    for position, cut, piece in edits:
        text = text[:position] + piece + text[position + cut:]
    assert_parses_or_reports(text)


# --- flows generated from the grammar ------------------------------------------------------

CONDITIONS = ["true", "false", "n > 1", "n < max(2, 3)", "len(items) == 0", "max(n, 1) > 3", "not done",
              '"a parallel 2" != ""', "until", "lock.result", "1/0", "n >", "items.first"]
NAMES = ["n", "done", "lock", "until", "on", "repeat", "first", "keep", "max", "signals", "x"]
SIGNALS = ["go", "stop", "done", "lock", "on", "until", "if"]
COUNTS = ["1", "2", "3", "0", "1001", "1000000", "many", ""]
LOCK_NAMES = ['"printer"', 'f"c-{n}"', "n", '"a global"']


class _Gen:
    """Random flow text from the grammar, with the odd mistake a person might make."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.steps = 0

    def pick(self, options: list) -> str:
        return self.rng.choice(options)

    def maybe(self, text: str, chance: float = 0.3) -> str:
        return text if self.rng.random() < chance else ""

    def option(self, word: str) -> str:
        return self.maybe(f" {word} {self.pick(COUNTS)}".rstrip())

    def flow(self) -> str:
        lines = ["flow Gen", "  input items = [1, 2]", "  input done = false"]
        lines += self.block(1, top=True)
        return "\n".join(lines) + "\n"

    def block(self, depth: int, top: bool = False) -> list[str]:
        pad = "  " * depth
        lines = []
        if self.rng.random() < 0.25:
            for _ in range(self.rng.randint(1, 2)):
                var = self.maybe(f" as {self.pick(NAMES)}")
                lines.append(f"{pad}on signal {self.pick(SIGNALS)}{var}:")
                lines += self.block(depth + 1)
        if top:
            lines.append(f"{pad}set n = 1")
        for _ in range(self.rng.randint(1, 3)):
            lines += self.statement(depth)
        return lines

    def statement(self, depth: int) -> list[str]:
        pad = "  " * depth
        kinds = ["set", "sleep", "step", "break", "continue", "return"]
        if depth < 5:
            kinds += ["while", "repeat", "signal for", "for", "lock", "parallel", "race", "if"] * 2
        kind = self.pick(kinds)
        inner = lambda: self.block(depth + 1)  # noqa: E731
        if kind == "while":
            return [f"{pad}while {self.pick(CONDITIONS)}{self.option('max')}:"] + inner()
        if kind == "repeat":
            until = [f"{pad}until {self.pick(CONDITIONS)}"] if self.rng.random() < 0.9 else []
            return [f"{pad}repeat{self.option('max')}:"] + inner() + until
        if kind == "signal for":
            close = self.pick(["", f" until signal {self.pick(SIGNALS)}", f" until {self.pick(CONDITIONS)}"])
            source = self.pick(["signal", "signals"])
            return [f"{pad}for {self.pick(NAMES)} in {source} {self.pick(SIGNALS)}{close}{self.option('max')}"
                    f"{self.option('parallel')}:"] + inner()
        if kind == "for":
            first = self.option("first") + self.maybe(" keep rest")
            return [f"{pad}for {self.pick(NAMES)} in items{self.option('parallel')}{first}:"] + inner()
        if kind == "lock":
            return [f"{pad}lock {self.pick(LOCK_NAMES)}{self.maybe(' global')}:"] + inner()
        if kind in ("parallel", "race"):
            head = kind + (self.option("first") + self.maybe(" keep rest") if kind == "parallel" else "")
            lines = [f"{pad}{head}:"]
            for _ in range(self.rng.randint(1, 3)):
                condition = self.maybe(f" if {self.pick(CONDITIONS)}")
                lines += [f"{pad}  branch{condition}:"] + self.block(depth + 2)
            return lines
        if kind == "if":
            return [f"{pad}if {self.pick(CONDITIONS)}:"] + inner()
        if kind == "step":
            return self.step(pad, depth)
        if kind == "set":
            return [f"{pad}set {self.pick(NAMES)} = {self.pick(CONDITIONS)}"]
        if kind == "sleep":
            return [f"{pad}sleep 1s"]
        if kind == "return":
            return [f"{pad}return {self.pick(CONDITIONS)}"]
        return [f"{pad}{kind}{self.maybe(' now', 0.05)}"]

    def step(self, pad: str, depth: int) -> list[str]:
        self.steps += 1
        lines = [f"{pad}step s{self.steps}:"]
        what = self.pick(["run", "wait", "flow"])
        if what == "run":
            lines.append(f'{pad}  run ["work.sh", n]')
        elif what == "wait":
            lines.append(f"{pad}  wait signal {self.pick(SIGNALS)}{self.maybe(' timeout 1s')}")
        else:
            lines.append(f"{pad}  flow Child{self.maybe(' detached')}")
        if self.rng.random() < 0.3:
            lines += [f"{pad}  catch:"] + self.block(depth + 2)
        return lines


def damage(rng: random.Random, text: str) -> str:
    """A few line-level mistakes: a line dropped, doubled, or shifted by one indentation step."""
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(1, len(lines))
        change = rng.choice(["drop", "double", "indent", "dedent", "colon"])
        if change == "drop":
            del lines[at]
        elif change == "double":
            lines.insert(at, lines[at])
        elif change == "indent":
            lines[at] = "  " + lines[at]
        elif change == "dedent":
            lines[at] = lines[at][2:]
        else:
            lines[at] = lines[at].rstrip(":")
        if len(lines) < 2:
            break
    return "\n".join(lines)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.booleans())
def test_generated_pattern_flows_parse_or_report_positioned_problems(seed, damaged):
    rng = random.Random(seed)
    text = _Gen(rng).flow()
    if damaged:
        text = damage(rng, text)
    assert_parses_or_reports(text)


def test_the_generator_makes_valid_flows_too():
    """Not every generated flow is wrong: enough of them parse for the checks above to mean something."""
    rng = random.Random(11)
    valid = sum(assert_parses_or_reports(_Gen(rng).flow()) is not None for _ in range(300))

    assert valid >= 20
