"""localflow/core must stay pure: no clock, randomness, I/O or process control."""

import ast
from pathlib import Path

import localflow.core

FORBIDDEN = {"os", "time", "random", "subprocess", "filelock", "watchdog", "socket", "threading",
             "io", "pathlib", "shutil", "tempfile", "signal", "secrets", "uuid", "sys", "asyncio"}
CORE = Path(localflow.core.__file__).parent


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module


def test_core_imports_nothing_that_touches_the_world():
    offences = [
        f"{path.name}:{line}: {module}"
        for path in sorted(CORE.glob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in FORBIDDEN or module.startswith(("localflow.store", "localflow.runner",
                                                                     "localflow.engine", "localflow.supervisor"))
    ]
    assert offences == []


def test_core_never_reads_the_clock_through_datetime():
    for path in CORE.glob("*.py"):
        text = path.read_text()
        assert ".now(" not in text and "utcnow" not in text and "today(" not in text, path.name


def test_the_purity_check_would_catch_an_offending_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom time import time\n")
    assert [m for _, m in imported_modules(bad)] == ["os", "time"]
