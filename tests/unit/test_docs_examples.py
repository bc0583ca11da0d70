"""Every ```flow block in docs/dsl.md parses, so the DSL reference cannot drift from the parser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from localflow import ir
from localflow.dsl import parse_flow

DOC = Path(__file__).resolve().parents[2] / "docs" / "dsl.md"
BLOCKS = re.findall(r"^```flow\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_dsl_reference_has_flow_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block-{i + 1}" for i in range(len(BLOCKS))])
def test_flow_example_in_docs_parses(block):
    flow = parse_flow(block, "docs/dsl.md")

    assert flow.name


def test_the_flow_examples_together_show_every_construct():
    flows = [parse_flow(block, "docs/dsl.md") for block in BLOCKS]
    statements = [s for flow in flows for s in ir.walk(flow.body)]

    kinds = {type(s).__name__ for s in statements}
    catches = {c.match for s in statements if isinstance(s, ir.STEP_KINDS) for c in s.catches}
    assert kinds == {"Activity", "WaitSignal", "ChildFlow", "Sleep", "Fail", "Return", "Set", "If", "Parallel", "For",
                     "While", "Repeat", "Break", "Continue", "SignalLoop", "Lock", "Scope"}
    assert catches == {"exit", "timeout", "error", "any"}
    assert any(isinstance(s, ir.Parallel) and s.race for s in statements)
    assert any(isinstance(s, ir.For) and s.concurrency > 1 for s in statements)
    assert any(isinstance(s, ir.Activity) and s.undo for s in statements)
    assert any(flow.timeout_ms for flow in flows)
    assert any(isinstance(s, ir.Parallel) and s.first and s.keep_rest and s.conditions for s in statements)
    assert any(isinstance(s, ir.For) and s.first for s in statements)
    assert any(isinstance(s, ir.SignalLoop) and s.close_signal for s in statements)
    assert any(isinstance(s, ir.SignalLoop) and s.until for s in statements)
    assert {s.scope for s in statements if isinstance(s, ir.Lock)} == {"workflow", "home"}
    assert any(isinstance(s, ir.ChildFlow) and s.detached for s in statements)


ALL_DOCS = sorted((DOC.parent).glob("*.md"))
EVERY_BLOCK = [(doc.name, i + 1, block) for doc in ALL_DOCS
               for i, block in enumerate(re.findall(r"^```flow\n(.*?)^```", doc.read_text(encoding="utf-8"),
                                                    flags=re.S | re.M))]


@pytest.mark.parametrize("doc, number, block", EVERY_BLOCK, ids=[f"{d}-{n}" for d, n, _ in EVERY_BLOCK])
def test_every_flow_example_in_every_doc_parses(doc, number, block):
    """docs/activities.md, docs/testing.md, ...: a ```flow block is a whole flow that parses."""
    assert parse_flow(block, f"docs/{doc}").name
