"""What every `lf` command shares: the home directory, the engine, input parsing, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from rich.console import Console

from localflow.engine import Engine
from localflow.errors import InputError

HOME_ENV = "LOCALFLOW_HOME"


def engine_for(args: argparse.Namespace) -> Engine:
    home = args.home or os.environ.get(HOME_ENV) or os.getcwd()
    return Engine(home)


def console() -> Console:
    """A console for command output; piped output is not wrapped at 80 columns, so grep sees whole rows."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console(highlight=False)
    return Console(highlight=False, width=200)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def parse_input(raw_json: str | None, pairs: list[str] | None) -> dict[str, Any]:
    """``--input '{...}'`` then ``-i key=value`` on top; a value that parses as JSON is JSON, else a string."""
    given: dict[str, Any] = {}
    if raw_json:
        try:
            given = json.loads(raw_json)
        except ValueError as exc:
            raise InputError(f"--input is not valid JSON: {exc}") from None
        if not isinstance(given, dict):
            raise InputError("--input must be a JSON object, like '{\"order_id\": \"A-1\"}'")
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"-i expects key=value, got {pair!r}")
        try:
            given[key] = json.loads(value)
        except ValueError:
            given[key] = value
    return given


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
