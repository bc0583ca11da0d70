"""What every `lf` command shares: the home directory, the engine, input parsing, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union

from localflow.engine import Engine
from localflow.core.jsonvalue import MAX_DEPTH, check_value, parse_json
from localflow.errors import InputError, InvalidValue, LocalFlowError

if TYPE_CHECKING:
    from rich.console import Console

HOME_ENV = "LOCALFLOW_HOME"


def home_of(args: argparse.Namespace) -> Path:
    """``--home``, else ``$LOCALFLOW_HOME``, else the nearest folder from here up that holds flows/ or
    var/ (as git finds .git), else the current directory. A home that was named must exist."""
    given = getattr(args, "home", None)
    named = "--home" if given else HOME_ENV
    given = given or os.environ.get(HOME_ENV)
    if given:
        path = Path(given)
        if not path.is_dir():
            raise InputError(f"{named} {given}: " + ("not a folder" if path.exists() else "no such folder") +
                             "; a home is a folder holding flows/ (and var/, made on first use)")
        return path
    from localflow.client import find_home

    return find_home(Path.cwd())


def engine_for(args: argparse.Namespace) -> Engine:
    return Engine(home_of(args))


def client_for(args: argparse.Namespace):
    """The Python API (localflow/client.py) on this command's home."""
    from localflow.client import Client

    return Client(home_of(args))


def resolve(engine: Engine, ref: str) -> str:
    """The workflow id ``ref`` names: an exact id, a unique prefix, a random tail, or ``@last``
    (``Client.resolve``: an ambiguous one is a usage error listing the candidates)."""
    from localflow.client import Client

    return Client(engine.paths.home).resolve(ref)


def console() -> Console:
    """A console for command output; piped output is not wrapped at 80 columns, so grep sees whole rows.

    rich is imported here, not at the top: a ``--json`` view never needs it.
    """
    from rich.console import Console

    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console(highlight=False)
    return Console(highlight=False, width=200)


def print_json(value: Any) -> None:
    """What a command prints for programs, in the ``-o`` format chosen (output.py)."""
    from localflow.cli.output import emit

    emit(value)


def parse_input(raw_json: str | None, pairs: list[str] | None, flow: Any = None) -> dict[str, Any]:
    """``--input '{...}'`` then ``-i key=value`` on top; a value that parses as JSON is JSON, else a string.

    With the ``flow``, ``-i`` is typed by each input's default: an input whose default is text
    takes the text as written (``-i order_id=123`` is ``"123"``); the others parse as JSON, and
    the engine refuses a value of another kind than the default's (core/inputs.py).

    Every value must be storable (core/jsonvalue.py): NaN, Infinity, 1e999, text that is
    not valid Unicode and nesting past the limit are refused here, before anything is created.
    """
    given: dict[str, Any] = {}
    if raw_json:
        given = _checked(lambda: parse_json(raw_json, "--input"))
        if not isinstance(given, dict):
            raise InputError("--input must be a JSON object, like '{\"order_id\": \"A-1\"}'")
    text_inputs = _text_inputs(flow)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"-i expects key=value, got {pair!r}")
        if key in text_inputs:
            given[key] = _checked(lambda: check_value(value, f"-i {key}"))
            continue
        given[key] = _checked(lambda: _pair_value(key, value))
    return _checked(lambda: check_value(given, "the input"))


def _text_inputs(flow: Any) -> set[str]:
    if flow is None:
        return set()
    from localflow.core.inputs import default_of
    from localflow.errors import InputError as _InputError

    names = set()
    for item in flow.inputs:
        try:
            if isinstance(default_of(item), str):
                names.add(item.name)
        except _InputError:
            pass
    return names


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


def holder_json(holder: str | None) -> dict | None:
    """Who holds the executor slot, for JSON: ``{"role": "supervisor", "pid": 8434}`` (None: nobody)."""
    if holder is None:
        return None
    role, _, pid = holder.rpartition(" pid ")
    return {"role": role or holder, "pid": int(pid) if pid.isdigit() else None}


def lf_command(args: argparse.Namespace) -> str:
    """``lf``, with ``--home DIR`` when the user gave one: a command we print must work as typed."""
    import shlex

    home = getattr(args, "home", None)
    return f"lf --home {shlex.quote(str(home))}" if home else "lf"


def exit_code_of(state: Any) -> int:
    """The exit code of a workflow's outcome (`lf run`, `lf watch --exit-status`, `lf result`): 0
    completed (or still running), 1 failed, cancelled or terminated, 4 nondeterministic."""
    from localflow.errors import ExitCode

    if state.divergence is not None:
        return ExitCode.NONDETERMINISM
    if state.status == "completed" or not state.terminal:
        return ExitCode.OK
    return ExitCode.WORKFLOW_FAILED
