"""`lf --help` stays cheap: building the parser imports none of what a command may need.

cli/main.py defines every command's arguments and imports a command's module only
when it runs. These tests check what a fresh interpreter has imported after
building the parser and printing help (a behaviour test: nothing here is timed).
Each runs a subprocess that reads and writes no files.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from localflow.cli.main import build_parser, handler_of

HEAVY = ("rich", "watchdog", "filelock", "localflow.dsl", "localflow.engine", "localflow.supervisor.service")

# One valid command line per command; each names the handler it dispatches to.
COMMANDS = (["start", "F"], ["run", "F"], ["list"], ["inspect", "w"], ["history", "w"], ["supervise"],
            ["signal", "w", "go"], ["cancel", "w"], ["validate"], ["graph", "F"], ["replay", "w"],
            ["resume", "w"], ["fork", "w", "--at", "1"], ["export", "w"], ["import", "b"], ["terminate", "w"],
            ["logs", "w"], ["schedule", "list"])


def modules_after(code: str) -> list[str]:
    """Every module a fresh interpreter has imported after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def heavy_in(modules: list[str]) -> list[str]:
    return [m for m in modules if m in HEAVY or m.startswith(tuple(h + "." for h in HEAVY))]


def test_building_the_parser_imports_nothing_heavy():
    modules = modules_after("import localflow.cli.main\nlocalflow.cli.main.build_parser().format_help()")
    assert "localflow.cli.main" in modules  # the check looks at the right interpreter
    assert heavy_in(modules) == []


HELP_OF_EACH = """
import contextlib, io
from localflow.cli.main import main
for argv in {commands!r}:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv + ["--help"])
        except SystemExit as exit:
            assert exit.code == 0, (argv, exit.code)
        else:
            raise AssertionError(f"{{argv}} --help did not exit")
"""


def test_help_of_every_command_imports_nothing_heavy():
    """`lf --help` and `lf COMMAND --help` for every command, one after the other in one interpreter."""
    code = HELP_OF_EACH.format(commands=[[]] + [argv[:1] for argv in COMMANDS])
    assert heavy_in(modules_after(code)) == []


def test_the_check_would_catch_a_heavy_import():
    assert heavy_in(modules_after("import localflow.cli.read")) != []


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda c: c[0])
def test_every_command_names_a_handler_that_exists(argv):
    spec = build_parser().parse_args(argv).handler
    assert callable(handler_of(spec)), spec
