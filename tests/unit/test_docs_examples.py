"""Every ```flow block in docs/dsl.md parses, so the DSL reference cannot drift from the parser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from localflow.dsl import parse_flow

DOC = Path(__file__).resolve().parents[2] / "docs" / "dsl.md"
BLOCKS = re.findall(r"^```flow\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_dsl_reference_has_flow_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block-{i + 1}" for i in range(len(BLOCKS))])
def test_flow_example_in_docs_parses(block):
    flow = parse_flow(block, "docs/dsl.md")

    assert flow.name
