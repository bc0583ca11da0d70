"""How `lf` prints data: ``-o text|json|jsonl|ids|tsv`` on every command that prints some.

- ``text`` (default): tables and panels for people. On a terminal they have colour and
  box drawing; piped, or with ``NO_COLOR`` set, they are plain text: no colour, no box
  characters, no caption, so ``lf list | awk '{print $1}'`` gives the header then ids.
- ``json``: one JSON document (an array for lists), indented. ``--json`` is an alias.
- ``jsonl``: one compact JSON object per line (per row, for lists).
- ``ids``: only the ids, one per line (``-q`` is an alias on list-like commands).
- ``tsv``: a header line, then one line per row, tab-separated; nested values as compact
  JSON, tabs and newlines inside a value written as ``\\t`` and ``\\n``, null as empty.

Machine formats print times as ISO 8601 UTC with ``Z`` and are documented, field by
field, in docs/cli.md (tests check the shapes against it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Iterable, Sequence

FORMATS = ("text", "json", "jsonl", "ids", "tsv")


def add_output_option(parser: argparse.ArgumentParser, formats: Sequence[str] = FORMATS, quiet: bool = True) -> None:
    """``-o FORMAT`` (and ``--json``; ``-q`` when ``ids`` is one of ``formats`` and ``quiet``)."""
    parser.add_argument("-o", "--output", choices=list(formats), default=argparse.SUPPRESS, metavar="FORMAT",
                        help=f"output format: {', '.join(formats)} (default text; see docs/cli.md)")
    parser.add_argument("--json", dest="output", action="store_const", const="json", default=argparse.SUPPRESS,
                        help="the same as -o json")
    if quiet and "ids" in formats:
        parser.add_argument("-q", "--quiet", dest="output", action="store_const", const="ids",
                            default=argparse.SUPPRESS, help="print only ids, one per line (the same as -o ids)")


def output_of(args: argparse.Namespace) -> str:
    return getattr(args, "output", None) or "text"


def machine(args: argparse.Namespace) -> bool:
    """True when the output is for programs (every format but text)."""
    return output_of(args) != "text"


def plain() -> bool:
    """Text without colour or box drawing: standard output is no terminal, or ``NO_COLOR`` is set."""
    return not sys.stdout.isatty() or bool(os.environ.get("NO_COLOR"))


def dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False)


def print_json(value: Any) -> None:
    sys.stdout.write(dumps(value, indent=2) + "\n")


CHOSEN = "json"  # the format of this command run, set by `lf`'s main before a handler runs
_ID_KEYS = ("id", "workflow_id", "name")


def emit(value: Any) -> None:
    """Print what a command returns for programs, in the format chosen with ``-o`` (``CHOSEN``):
    a list of objects is a list of rows, an object one row."""
    fmt = CHOSEN if CHOSEN in FORMATS and CHOSEN != "text" else "json"
    if fmt == "json":
        print_json(value)
        return
    rows = value if isinstance(value, list) else [value]
    if fmt == "jsonl":
        sys.stdout.writelines(dumps(row) + "\n" for row in rows)
        return
    if fmt == "ids":
        from localflow.errors import InputError

        for row in rows:
            key = next((k for k in _ID_KEYS if isinstance(row, dict) and k in row), None)
            if key is None:
                raise InputError("-o ids: this command prints no ids; use -o json, jsonl or tsv")
            if row[key] is not None:
                sys.stdout.write(f"{row[key]}\n")
        return
    dicts = [row if isinstance(row, dict) else {"value": row} for row in rows]
    if not dicts:
        return  # no row, no columns to name
    columns: list[str] = []
    for row in dicts:
        columns.extend(k for k in row if k not in columns)
    emit_list("tsv", dicts, lambda: None, columns)


def emit_list(fmt: str, rows: list[dict[str, Any]], text: Callable[[], None], columns: Sequence[str] | None = None,
              id_key: str = "id") -> None:
    """Print ``rows`` in ``fmt``; ``text()`` prints the human view; ``columns``: the TSV columns
    (default: every key of the first row)."""
    if fmt == "json":
        print_json(rows)
    elif fmt == "jsonl":
        sys.stdout.writelines(dumps(row) + "\n" for row in rows)
    elif fmt == "ids":
        sys.stdout.writelines(f"{row[id_key]}\n" for row in rows)
    elif fmt == "tsv":
        keys = list(columns or (rows[0].keys() if rows else ()))
        sys.stdout.write("\t".join(keys) + "\n")
        sys.stdout.writelines("\t".join(tsv_cell(row.get(k)) for k in keys) + "\n" for row in rows)
    else:
        text()


def emit_one(fmt: str, value: dict[str, Any], text: Callable[[], None], columns: Sequence[str] | None = None,
             id_key: str = "id") -> None:
    """Print one object in ``fmt`` (``ids``: its id; ``tsv``: a header and one row)."""
    if fmt == "json":
        print_json(value)
    elif fmt in ("jsonl", "ids", "tsv"):
        emit_list(fmt, [value], text, columns, id_key)
    else:
        text()


def tsv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        value = dumps(value) if isinstance(value, (dict, list)) else str(value)
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def scalar_columns(value: dict[str, Any], skip: Iterable[str] = ()) -> list[str]:
    """The keys of ``value`` whose values fit a TSV cell well (no lists or objects)."""
    return [k for k, v in value.items() if k not in skip and not isinstance(v, (dict, list))]
