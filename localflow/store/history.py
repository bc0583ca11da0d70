"""The append-only JSONL history of one workflow: create, read, append, repair.

Rules (ARCHITECTURE.md, storage rules 1-5):
- every line carries a contiguous ``seq`` from 1 and a crc (codec.py); a gap, a
  duplicate or a bad checksum is detected, never accepted;
- creation is mkdir + O_EXCL create holding the first event + fsync of the
  file, its directory and the parent; a directory without a valid first line
  was never started;
- appends happen only under the workflow's lock (the caller holds it), as one
  ``os.write`` of the whole batch on an O_APPEND descriptor, then fsync; a failed
  fsync is fatal for that write;
- a torn tail (bytes after the last newline, or trailing NUL lines) is a crash
  artefact: readers ignore it, the next writer keeps a copy beside the history
  and truncates it; a bad line followed by good lines is corruption and raises
  ``HistoryCorruptError`` naming file:line.

It never decides anything about workflows; it stores records (plain dicts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from localflow import faults
from localflow.errors import ConflictError, HistoryCorruptError, PayloadTooLarge, UnsafePath, WorkflowExists
from localflow.store import codec, safe
from localflow.store.atomic import FILE_MODE, fsync_dir, storage_error

MAX_HISTORY_BYTES = 64 * 1024 * 1024
TAIL_BYTES = 64


@dataclass
class HistoryRead:
    """What a read found: the valid records, the size of the valid prefix, any torn tail."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    valid_size: int = 0
    torn: bytes = b""
    base_seq: int = 0  # the seq just before ``records`` (a read that started mid-file)
    tail: bytes = b""  # the valid prefix's last TAIL_BYTES bytes: a rewritten file no longer has them

    @property
    def last_seq(self) -> int:
        return self.records[-1]["seq"] if self.records else self.base_seq


def _anchor(path: Path) -> Path:
    """The var/ of ``<var>/workflows/<id>/history.jsonl``: nothing below it is followed if a symlink."""
    return path.parents[2] if len(path.parents) > 2 else path.parent


def _open_nofollow(path: Path, flags: int) -> int:
    return safe.open_file(_anchor(path), path, flags, FILE_MODE)


def read_bytes(path: Path, offset: int = 0) -> bytes:
    return safe.read_bytes(_anchor(path), path, offset)


def parse(path: Path, data: bytes, base_seq: int = 0, base_size: int = 0) -> HistoryRead:
    """Split history bytes into records, a valid prefix and a torn tail (pure).

    ``base_seq``/``base_size`` describe what comes before ``data`` when reading a
    tail from an offset: line numbers and seqs then continue from there.
    """
    result = HistoryRead(path, base_seq=base_seq)
    end = data.rfind(b"\n") + 1
    body, result.torn = data[:end], data[end:]
    lines = body.split(b"\n")[:-1] if body else []
    # Trailing NUL-only lines are what a crash leaves when the size grew but the data never came.
    while lines and lines[-1].strip(b"\x00") == b"":
        result.torn = lines.pop() + b"\n" + result.torn
    offset = base_size
    for number, line in enumerate(lines, start=base_seq + 1):
        try:
            record = codec.decode(line)
        except codec.LineError as exc:
            raise HistoryCorruptError(str(path), number, str(exc)) from None
        if record["seq"] != number:
            raise HistoryCorruptError(str(path), number, f"expected seq {number}, found {record['seq']}")
        result.records.append(record)
        offset += len(line) + 1
    result.valid_size = offset
    result.tail = data[:offset - base_size][-TAIL_BYTES:]
    return result


def read(path: Path) -> HistoryRead:
    """Read a history; FileNotFoundError if absent, HistoryCorruptError if damaged mid-file."""
    return parse(path, read_bytes(path))


def read_after(path: Path, size: int, last_seq: int, tail: bytes) -> HistoryRead | None:
    """Read only what was appended after a known valid prefix of ``size`` bytes.

    ``tail`` is the prefix's last bytes as seen before; if the file no longer has
    them there (it was replaced or rewritten), returns None: read it whole instead.
    """
    data = read_bytes(path, size - len(tail))
    if not data.startswith(tail):
        return None
    result = parse(path, data[len(tail):], base_seq=last_seq, base_size=size)
    result.tail = (tail + result.tail)[-TAIL_BYTES:]
    return result


def create(path: Path, first: dict[str, Any], more: Sequence[dict[str, Any]] = ()) -> None:
    """Create ``path`` holding exactly ``first`` (seq 1) and ``more``. The caller holds the workflow lock.

    An existing file without a valid first line is a creation that crashed: it is
    replaced. One with a valid first line raises WorkflowExists.
    """
    line = b"".join(codec.encode(record) for record in (first, *more))
    try:
        fd = _open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        if read(path).records:
            raise WorkflowExists(path.parent.name) from None
        if faults.ACTIVE:
            faults.hit("unlink", path)
        path.unlink()
        fd = _open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except OSError as exc:
        raise storage_error("create", path, exc) from exc
    try:
        safe.write_all(fd, line)
        if faults.ACTIVE:
            faults.hit("fsync", path)
        os.fsync(fd)
    except OSError as exc:
        raise storage_error("write", path, exc) from exc
    finally:
        os.close(fd)
    fsync_dir(path.parent)
    fsync_dir(path.parent.parent)


def repair_torn_tail(current: HistoryRead) -> None:
    """Keep a copy of a torn tail beside the history, then truncate it away (lock held)."""
    if not current.torn:
        return
    keep = current.path.with_name(f"{current.path.name}.torn-{current.valid_size}")
    try:
        fd = _open_nofollow(keep, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            if faults.ACTIVE:
                faults.hit("write", keep)
            os.write(fd, current.torn)
            if faults.ACTIVE:
                faults.hit("fsync", keep)
            os.fsync(fd)
        finally:
            os.close(fd)
        fd = _open_nofollow(current.path, os.O_WRONLY)
        try:
            if faults.ACTIVE:
                faults.hit("truncate", current.path)
            os.ftruncate(fd, current.valid_size)
            if faults.ACTIVE:
                faults.hit("fsync", current.path)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(current.path.parent)
    except UnsafePath:
        raise
    except OSError as exc:
        raise storage_error("repair the torn tail of", current.path, exc) from exc
    current.torn = b""


def append(current: HistoryRead, records: list[dict[str, Any]]) -> None:
    """Append ``records`` after ``current`` (a read made under the same lock hold).

    Checks that seqs continue ``current`` and that nobody wrote since the read,
    writes the batch with one write, then fsyncs. Raises ConflictError,
    PayloadTooLarge or StorageError; on any error nothing is reported as written.
    """
    if not records:
        return
    expected = current.last_seq + 1
    for offset, record in enumerate(records):
        if record["seq"] != expected + offset:
            raise ConflictError(str(current.path), expected + offset, record["seq"])
    data = b"".join(codec.encode(r) for r in records)  # first: a value that cannot be stored changes nothing
    if current.valid_size + len(data) > MAX_HISTORY_BYTES:
        raise PayloadTooLarge(f"history {current.path}", current.valid_size + len(data), MAX_HISTORY_BYTES)
    fd = _open_nofollow(current.path, os.O_WRONLY | os.O_APPEND)
    try:
        # Nobody may have written since the read: only then is what follows the valid prefix
        # the torn tail that read saw, safe to cut away.
        if os.fstat(fd).st_size != current.valid_size + len(current.torn):
            raise ConflictError(str(current.path), expected, -1)
        repair_torn_tail(current)
        if faults.ACTIVE:
            faults.hit("write", current.path)
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(28, "short write")
        if faults.ACTIVE:
            faults.hit("fsync", current.path)
        os.fsync(fd)
    except OSError as exc:
        _take_back(fd, current.valid_size)
        raise storage_error("append to", current.path, exc) from exc
    finally:
        os.close(fd)
    current.records.extend(records)
    current.valid_size += len(data)
    current.tail = (current.tail + data)[-TAIL_BYTES:]


def _take_back(fd: int, size: int) -> None:
    """After a failed write or fsync, cut the file back to what was durable: never trust it."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass  # the next writer sees the leftovers as a torn tail or a seq it did not expect
