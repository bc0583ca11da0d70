"""Bundles: a workflow and its children in one text file (`lf export`, `lf import`, `lf replay --file`).

A bundle is JSON Lines (UTF-8, one ``\\n`` after every line)::

    {"localflow_bundle": 1, "localflow": "0.1.0", "exported_at": "2026-11-25T21:00:00.000Z",
     "root": "P1", "workflows": ["P1", "P1.greet"]}
    {"workflow": "P1", "lines": 9}
    ... the 9 lines of var/workflows/P1/history.jsonl, byte for byte ...
    {"workflow": "P1.greet", "lines": 7}
    ... the 7 lines of var/workflows/P1.greet/history.jsonl ...

(the header is one line; it is wrapped here). The root comes first, then its children
depth first, in the order they were started: a child's id is the ``child_id`` of a
``ChildStarted`` in its parent's history. A child never created (its parent's executor
had not got to it yet) is not in the bundle.

Only the *valid prefix* of each history is exported, read by the store's own parser
(store/history.py): every crc checked, a crash's torn tail left out. Reading a bundle
checks everything again, line by line, before anything uses it: the header, every
section line, every history line's crc, seqs contiguous from 1, a history that folds,
sizes within the store's limits. An error names the bundle line (``b.jsonl:12: ...``),
never a traceback.

Importing writes each history's lines unchanged plus one ``WorkflowImported``, which
holds the workflow: nothing of it runs until ``lf resume`` releases it
(core/state.py, core/decide.py). All or nothing: every id must be free, and a failure
half-way removes what this import created.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Union

from localflow import __version__, ir
from localflow.core import events as ev
from localflow.core.jsonvalue import parse_json
from localflow.core.state import WorkflowState, evolve, fold
from localflow.core.timefmt import to_iso
from localflow.errors import (InputError, InvalidValue, InvalidWorkflowId, LocalFlowError, WorkflowExists,
                              WorkflowNotFound)
from localflow.store import codec, history
from localflow.store.paths import Paths, validate_workflow_id

FORMAT = 1
MAX_LINE_BYTES = codec.MAX_LINE_BYTES  # one line of a bundle, as one line of a history
MAX_HISTORY_BYTES = history.MAX_HISTORY_BYTES  # one workflow's lines, as one history file
MAX_BUNDLE_BYTES = 256 * 1024 * 1024
MAX_WORKFLOWS = 10_000
MAX_NESTING = ir.MAX_JSON_DEPTH + 2  # a pinned flow inside its event: the deepest thing a history holds


class BundleError(LocalFlowError):
    """A bundle that cannot be read: ``<file>:<line>: <reason>``. Nothing was imported."""

    exit_code = 3  # like a damaged history

    def __init__(self, name: str, line: int, reason: str) -> None:
        self.name = name
        self.line = line
        self.reason = reason
        super().__init__(f"{name}:{line}: {reason}" if line else f"{name}: {reason}")


class ImportRefused(WorkflowExists):
    """Workflows of the bundle already exist here: nothing is imported (exit code of WorkflowExists)."""

    def __init__(self, name: str, taken: list[str]) -> None:
        self.workflow_id = taken[0]
        self.taken = taken
        which = ", ".join(taken[:5]) + (f" and {len(taken) - 5} more" if len(taken) > 5 else "")
        LocalFlowError.__init__(
            self, f"cannot import {name}: workflow{'s' if len(taken) > 1 else ''} {which} already "
                  f"exist{'s' if len(taken) == 1 else ''} here (see `lf inspect {taken[0]}`); nothing was imported. "
                  "Import it into another LocalFlow home (--home), or move the existing workflow directory aside")


@dataclass
class Section:
    """One workflow of a bundle: its history lines as they are in the file, and what they fold to."""

    workflow_id: str
    lines: list[bytes]  # each with its newline, byte for byte
    records: list[dict[str, Any]]  # decoded, crc checked (without the crc field)
    events: list[ev.Event]
    state: WorkflowState
    first_line: int  # the bundle line number of its first history line


@dataclass
class Bundle:
    name: str  # as the user named the file, for messages
    header: dict[str, Any]
    sections: list[Section] = field(default_factory=list)

    @property
    def root(self) -> str:
        return self.sections[0].workflow_id

    @property
    def exported_at(self) -> str:
        return self.header["exported_at"]


# --- export -----------------------------------------------------------------------------------


def export(paths: Paths, root: str, now_ms: int) -> bytes:
    """The bundle of ``root`` and its children, as bytes (WorkflowNotFound, HistoryCorruptError)."""
    validate_workflow_id(root)
    sections: list[tuple[str, bytes, int]] = []
    pending, seen = [root], {root}
    total = 0
    while pending:
        workflow_id = pending.pop(0)
        found = _valid_prefix(paths, workflow_id)
        if found is None:
            if workflow_id == root:
                raise WorkflowNotFound(root)
            continue  # a child its parent's executor never created
        data, records = found
        sections.append((workflow_id, data, len(records)))
        total += len(data)
        if total > MAX_BUNDLE_BYTES:
            raise InputError(f"the bundle of {root} would be over {MAX_BUNDLE_BYTES} bytes; "
                             "export the children one by one")
        children = []
        for record in records:
            child = record.get("child_id") if record.get("type") == "ChildStarted" else None
            if isinstance(child, str) and child not in seen:
                try:
                    children.append(validate_workflow_id(child))
                except InvalidWorkflowId:
                    continue
                seen.add(child)
        pending[:0] = children  # depth first: a child's own children come before its next sibling
    if len(sections) > MAX_WORKFLOWS:
        raise InputError(f"{root} has more than {MAX_WORKFLOWS} workflows below it; export them in parts")
    header = {"localflow_bundle": FORMAT, "localflow": __version__, "exported_at": to_iso(now_ms), "root": root,
              "workflows": [s[0] for s in sections]}
    out = [_json_line(header)]
    for workflow_id, data, count in sections:
        out.append(_json_line({"workflow": workflow_id, "lines": count}))
        out.append(data)
    return b"".join(out)


def _valid_prefix(paths: Paths, workflow_id: str) -> Union[tuple[bytes, list[dict[str, Any]]], None]:
    """The bytes of a history's valid prefix and its records; None if the workflow does not exist."""
    path = paths.history(workflow_id)
    try:
        data = history.read_bytes(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    current = history.parse(path, data)  # crcs and seqs checked; HistoryCorruptError names file:line
    if not current.records:
        return None  # a creation that never finished
    return data[:current.valid_size], current.records


def _json_line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a tmp file beside it, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --- reading ----------------------------------------------------------------------------------


def read(path: str) -> Bundle:
    """Read and check the bundle at ``path`` (``-``: standard input)."""
    if path == "-":
        return parse(sys.stdin.buffer, "<stdin>")
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read the bundle {path}: {exc.strerror or exc}") from None
    with stream:
        return parse(stream, path)


def parse_bytes(data: bytes, name: str) -> Bundle:
    return parse(io.BytesIO(data), name)


class _Lines:
    """A bundle's lines, numbered and bounded (no line, and no bundle, may exceed its limit)."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self.stream = stream
        self.name = name
        self.number = 0
        self.total = 0

    def error(self, reason: str, line: Union[int, None] = None) -> BundleError:
        return BundleError(self.name, self.number if line is None else line, reason)

    def next(self, what: str) -> Union[bytes, None]:
        """The next line with its newline, or None at the end of the file."""
        data = self.stream.readline(MAX_LINE_BYTES + 1)
        if not data:
            return None
        self.number += 1
        self.total += len(data)
        if self.total > MAX_BUNDLE_BYTES:
            raise self.error(f"the bundle is larger than {MAX_BUNDLE_BYTES} bytes")
        if not data.endswith(b"\n"):
            if len(data) > MAX_LINE_BYTES:
                raise self.error(f"{what} is longer than {MAX_LINE_BYTES} bytes")
            raise self.error(f"{what} has no newline: the bundle was cut short (truncated)")
        return data

    def required(self, what: str) -> bytes:
        data = self.next(what)
        if data is None:
            raise self.error(f"the bundle ends where {what} should be (truncated)", self.number + 1)
        return data

    def json(self, what: str) -> dict[str, Any]:
        data = self.required(what)
        try:
            value = parse_json(data[:-1], what)
        except InvalidValue as exc:
            raise self.error(str(exc)) from None
        if not isinstance(value, dict):
            raise self.error(f"{what} is not a JSON object")
        return value


def parse(stream: IO[bytes], name: str) -> Bundle:
    """Read a bundle from a binary stream; BundleError naming ``name:line`` if anything is wrong."""
    lines = _Lines(stream, name)
    header = _header(lines)
    bundle = Bundle(name, header)
    for workflow_id in header["workflows"]:
        bundle.sections.append(_section(lines, workflow_id))
    if lines.next("a line after the last workflow") is not None:
        raise lines.error(f"unexpected line after the last workflow's history "
                          f"(the header lists {len(header['workflows'])} workflows)")
    return bundle


def _header(lines: _Lines) -> dict[str, Any]:
    first = lines.next("the header")
    if first is None:
        raise lines.error("the file is empty: not a LocalFlow bundle", 1)
    try:
        header = parse_json(first[:-1], "the header")
    except InvalidValue as exc:
        raise lines.error(f"not a LocalFlow bundle: {exc}") from None
    if not isinstance(header, dict) or "localflow_bundle" not in header:
        raise lines.error('not a LocalFlow bundle: the first line has no "localflow_bundle"')
    version = header["localflow_bundle"]
    if version != FORMAT or isinstance(version, bool):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > FORMAT
        raise lines.error(f"bundle format {json.dumps(version)}" + (
            f" was written by a newer LocalFlow; this one (localflow {__version__}) reads format {FORMAT}"
            if newer else f" is not one LocalFlow knows (it reads format {FORMAT})"))
    if not isinstance(header.get("exported_at"), str):
        raise lines.error('the header has no "exported_at" time')
    ids = header.get("workflows")
    if not isinstance(ids, list) or not ids:
        raise lines.error('the header\'s "workflows" must be a non-empty list of workflow ids')
    if len(ids) > MAX_WORKFLOWS:
        raise lines.error(f"the header lists {len(ids)} workflows, more than the limit of {MAX_WORKFLOWS}")
    for workflow_id in ids:
        try:
            validate_workflow_id(workflow_id)
        except InvalidWorkflowId as exc:
            raise lines.error(f"the header lists {exc}") from None
    seen: set[str] = set()
    for workflow_id in ids:
        if workflow_id in seen:
            raise lines.error(f"the header lists workflow {workflow_id} twice")
        seen.add(workflow_id)
    if header.get("root", ids[0]) != ids[0]:
        raise lines.error(f'the header\'s "root" {json.dumps(header.get("root"))} is not its first workflow')
    return header


def _section(lines: _Lines, workflow_id: str) -> Section:
    head = lines.json(f"the section header of workflow {workflow_id}")
    if head.get("workflow") != workflow_id:
        raise lines.error(f"expected the section of workflow {workflow_id} (the header's order), "
                          f"found {json.dumps(head.get('workflow'))[:200]}")
    count = head.get("lines")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_HISTORY_BYTES // 32:
        raise lines.error(f'the section of workflow {workflow_id} needs "lines": a count of its history lines')
    section = Section(workflow_id, [], [], [], None, lines.number + 1)  # type: ignore[arg-type]
    size = 0
    state: Union[WorkflowState, None] = None
    for number in range(1, count + 1):
        what = f"line {number} of {count} of workflow {workflow_id}'s history"
        data = lines.next(what)
        if data is None:
            raise lines.error(f"the bundle ends after {number - 1} of the {count} history lines of workflow "
                              f"{workflow_id} (truncated)", lines.number + 1)
        size += len(data)
        if size > MAX_HISTORY_BYTES:
            raise lines.error(f"workflow {workflow_id}'s history is larger than {MAX_HISTORY_BYTES} bytes")
        record = _record(lines, data, what, number)
        if number == 1 and (record["type"] != "WorkflowStarted" or record.get("workflow_id") != workflow_id):
            raise lines.error(f"workflow {workflow_id}'s history must start with its WorkflowStarted, found "
                              f"{record['type']}" + (f" of {json.dumps(record.get('workflow_id'))[:140]}"
                                                     if record["type"] == "WorkflowStarted" else ""))
        try:
            event = ev.from_record(dict(record))
            state = evolve(state, event) if state is not None else fold([event])
        except Exception as exc:  # noqa: BLE001 - data from outside: any failure to fold is the bundle's fault
            raise lines.error(f"{what} (seq {number}, {record['type']}) does not fold: {exc}"[:600]) from None
        section.lines.append(data)
        section.records.append(record)
        section.events.append(event)
    section.state = state  # type: ignore[assignment]
    return section


def _record(lines: _Lines, data: bytes, what: str, number: int) -> dict[str, Any]:
    try:
        record = codec.decode(data[:-1])
    except codec.LineError as exc:
        raise lines.error(f"{what}: {exc}") from None
    except RecursionError:
        raise lines.error(f"{what}: nested too deeply") from None
    if _depth(record) > MAX_NESTING:
        raise lines.error(f"{what}: nested more than {MAX_NESTING} levels deep")
    if record["seq"] != number:
        raise lines.error(f"{what}: expected seq {number}, found {record['seq']}")
    return record


def _depth(value: Any) -> int:
    """How deep a decoded JSON value nests (iterative)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


# --- import -----------------------------------------------------------------------------------


def import_bundle(engine: Any, bundle: Bundle, now_ms: int) -> list[Section]:
    """Create every workflow of ``bundle`` here, held: all of them or none (``engine``: an Engine)."""
    file_name = os.path.basename(bundle.name) if bundle.name != "<stdin>" else bundle.name
    for section in bundle.sections:  # byte-exact: the store must write exactly the lines it was given
        for offset, (line, record) in enumerate(zip(section.lines, section.records)):
            if codec.encode(record) != line:
                raise BundleError(bundle.name, section.first_line + offset,
                                  f"line {offset + 1} of workflow {section.workflow_id}'s history has a right crc but "
                                  "is not written the way LocalFlow writes lines (key order, spacing or escapes), so "
                                  "it cannot be imported byte for byte")
    taken = [s.workflow_id for s in bundle.sections if _exists(engine.paths.workflow_dir(s.workflow_id))]
    if taken:
        raise ImportRefused(file_name, taken)
    note = {"file": file_name, "exported_at": bundle.exported_at, "root": bundle.root}
    created: list[str] = []
    try:
        for section in reversed(bundle.sections):  # children first: a root never shows without them
            last = section.events[-1]
            imported = ev.WorkflowImported(seq=last.seq + 1, ts=max(now_ms, last.ts + 1), bundle=note, end=True)
            try:
                engine.store.create(section.workflow_id, section.records[0],
                                    [*section.records[1:], ev.to_record(imported)])
            except WorkflowExists:
                raise ImportRefused(file_name, [section.workflow_id]) from None
            created.append(section.workflow_id)
    except BaseException:
        for workflow_id in created:
            shutil.rmtree(engine.paths.workflow_dir(workflow_id), ignore_errors=True)
        raise
    return bundle.sections


def _exists(path: Path) -> bool:
    return os.path.lexists(path)
