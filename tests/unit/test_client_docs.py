"""Every ```python block of docs/api.md runs, in order, in a fresh home (a copy of flows/, no
supervisor), so the API reference cannot drift from localflow/client.py."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from localflow.client import Client

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "api.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, flags=re.S | re.M)


@pytest.fixture
def doc_home():
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp, "home")
        shutil.copytree(REPO / "flows", home / "flows")
        before = os.getcwd()
        os.chdir(home)  # Client() finds its home from the current folder, as the doc says
        try:
            yield home
        finally:
            os.chdir(before)


def test_every_python_example_in_the_api_doc_runs_in_order(doc_home):
    namespace: dict = {"__name__": "api_doc"}
    printed = io.StringIO()
    for number, block in enumerate(BLOCKS, 1):
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(block, f"docs/api.md block {number}", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001 - name the block that broke
            pytest.fail(f"docs/api.md, python block {number} failed: {type(exc).__name__}: {exc}\n{block}")
    assert namespace["client"].home == doc_home.resolve() or namespace["client"].home == doc_home
    assert "showing" in printed.getvalue()


def test_the_api_doc_has_an_example_and_a_section_for_every_public_method():
    methods = [name for name in vars(Client) if not name.startswith("_")]
    headings = " ".join(re.findall(r"^## (.+)$", TEXT, flags=re.M))
    assert len(BLOCKS) >= 10
    for name in methods:
        assert name in headings, f"docs/api.md has no section for Client.{name}"
        assert any(f".{name}(" in block for block in BLOCKS), f"docs/api.md has no example of Client.{name}"
    for error in ("WorkflowFailed", "AmbiguousWorkflowId", "WorkflowNotFound", "WorkflowStillRunning",
                  "WaitTimedOut", "InvalidWorkflowId"):
        assert f"`{error}`" in TEXT.split("## Errors and exit codes")[1], f"{error} missing from the error table"
