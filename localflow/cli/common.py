"""What every `lf` command shares: the home directory, the engine, input parsing, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Union

from localflow.engine import Engine
from localflow.core.jsonvalue import MAX_DEPTH, check_value, parse_json
from localflow.errors import InputError, InvalidValue, LocalFlowError

if TYPE_CHECKING:
    from rich.console import Console

HOME_ENV = "LOCALFLOW_HOME"


def engine_for(args: argparse.Namespace) -> Engine:
    home = args.home or os.environ.get(HOME_ENV) or os.getcwd()
    return Engine(home)


def console() -> Console:
    """A console for command output; piped output is not wrapped at 80 columns, so grep sees whole rows.

    rich is imported here, not at the top: a ``--json`` view never needs it.
    """
    from rich.console import Console

    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console(highlight=False)
    return Console(highlight=False, width=200)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def parse_input(raw_json: str | None, pairs: list[str] | None) -> dict[str, Any]:
    """``--input '{...}'`` then ``-i key=value`` on top; a value that parses as JSON is JSON, else a string.

    Every value must be storable (core/jsonvalue.py): NaN, Infinity, 1e999, text that is
    not valid Unicode and nesting past the limit are refused here, before anything is created.
    """
    given: dict[str, Any] = {}
    if raw_json:
        given = _checked(lambda: parse_json(raw_json, "--input"))
        if not isinstance(given, dict):
            raise InputError("--input must be a JSON object, like '{\"order_id\": \"A-1\"}'")
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"-i expects key=value, got {pair!r}")
        given[key] = _checked(lambda: _pair_value(key, value))
    return _checked(lambda: check_value(given, "the input"))


def _pair_value(key: str, text: str) -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidValue(f"-i {key} is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:
        value = text
    try:
        return check_value(value, f"-i {key}")
    except InvalidValue as exc:
        if isinstance(value, float):  # NaN, Infinity, 1e999: JSON numbers that JSON cannot hold
            raise InvalidValue(f"{exc}; to pass it as text, quote it: -i '{key}=\"{text}\"'") from None
        raise


def _checked(parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except InvalidValue as exc:
        raise InputError(str(exc)) from None


def parse_data(text: str) -> Any:
    """A signal's ``--data``: one storable JSON value."""
    return _checked(lambda: parse_json(text, "--data"))


def note_supervisor(engine: Engine, when_none: str) -> Union[str, None]:
    """Tell the user on stderr if no supervisor runs (``when_none`` says what happens then).

    What the command did is already durable, so a problem with var/supervisor.lock
    is a warning here, never the command's failure. Returns who holds the slot.
    """
    from localflow.supervisor.service import supervisor_running

    try:
        holder = supervisor_running(engine)
    except LocalFlowError as exc:
        sys.stderr.write(f"warning: cannot tell whether a supervisor is running: {exc}\n")
        return None
    if holder is None:
        sys.stderr.write(f"note: no supervisor is running; {when_none}\n")
    return holder
