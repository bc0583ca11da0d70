"""Crash points and injected I/O errors, for the crash-safety tests (tests/crash/).

This module owns the hooks that the store and the runner call at every operation
that changes the disk or starts work: ``write``, ``fsync``, ``rename`` (rename and
replace), ``mkdir``, ``unlink``, ``truncate`` (localflow/store/*), and in
localflow/runner/*: ``spawn`` (an activity's process has just started, its pid not
yet recorded: a crash there leaves it running, unknown to the history), ``worker``
(a worker process for ``call`` steps has just started) and ``call`` (a call is about
to be handed to a worker). It decides, from the environment variable
``LF_FAULTS``, whether the process goes on, kills itself, or fails the operation.

In production ``LF_FAULTS`` is unset and every hook site costs one module-level
boolean check::

    if faults.ACTIVE:
        faults.hit("fsync", path)
    os.fsync(fd)

``LF_FAULTS`` holds comma-separated clauses:

- ``crash:KIND:N``: at the N-th operation of KIND (``any``: of every kind) the process
  sends itself SIGKILL, as ``kill -9`` would: the operation does not happen (a spawn's
  process, already started, is left running);
- ``error:KIND:ERRNO:N`` (``N+``: that one and every later one; ``N-M``: the N-th to the
  M-th, a disk full for a while): the N-th operation of KIND raises ``OSError(ERRNO)``
  (``EIO``, ``ENOSPC``, or a number) instead of happening; a just-started process
  (``spawn``, ``worker``) is killed first, as if it never started;
- ``count:PATH``: append one fixed-width record (``RECORD_BYTES`` bytes: kind, pid,
  call site, what) per operation to PATH, so a test knows how many operations a whole
  run makes (the size of PATH over ``RECORD_BYTES``) and which is which (``records``).
  Every process that has this clause shares the file, and with it the numbering:
  ``count:/tmp/ops,crash:any:17`` crashes whichever process makes the run's 17th
  operation. Without it, each process counts its own.

Whether ``LF_FAULTS`` is set is read once, at import; ``configure`` sets it again
(tests of this module). Nothing here is used when it is unset.
"""

from __future__ import annotations

import errno as _errno
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple, Union

ENV = "LF_FAULTS"
KINDS = ("write", "fsync", "rename", "mkdir", "unlink", "truncate", "spawn", "worker", "call")
RECORD_BYTES = 128
_FOREVER = 1 << 62

ACTIVE = False  # the only thing a hook site reads when LF_FAULTS is unset


@dataclass(frozen=True)
class _Clause:
    action: str  # "crash" or "error"
    kind: str  # one of KINDS, or "any"
    at: int  # the ordinal it fires at
    until: Union[int, None] = None  # and every one up to this ("N-M"; "N+": no end)
    code: int = 0  # the errno of an "error" clause

    def fires(self, ordinal: int) -> bool:
        if self.until is None:
            return ordinal == self.at
        return self.at <= ordinal <= self.until


class Record(NamedTuple):
    """One line of a count file."""

    ordinal: int
    kind: str
    pid: int
    site: str
    what: str


_guard = threading.Lock()
_clauses: tuple = ()
_count_path: Union[str, None] = None
_count_fd: Union[int, None] = None
_counts: dict = {}


def parse(spec: str) -> tuple[tuple, Union[str, None]]:
    """The clauses and the count file of an ``LF_FAULTS`` value; ValueError if it is malformed."""
    clauses, count = [], None
    for text in (part.strip() for part in spec.split(",")):
        if not text:
            continue
        action, _, rest = text.partition(":")
        if action == "count":
            if not rest:
                raise ValueError(f"{ENV}: 'count' needs a file: count:PATH")
            count = rest
            continue
        fields = rest.split(":")
        if action == "crash" and len(fields) == 2:
            kind, at, code = fields[0], fields[1], 0
        elif action == "error" and len(fields) == 3:
            kind, name, at = fields
            code = _errno_of(name)
        else:
            raise ValueError(f"{ENV}: cannot read {text!r}: expected crash:KIND:N, error:KIND:ERRNO:N (or N+, "
                             "N-M) or count:PATH")
        if kind != "any" and kind not in KINDS:
            raise ValueError(f"{ENV}: unknown operation {kind!r} in {text!r}: one of any, {', '.join(KINDS)}")
        first, dash, last = at.partition("-")
        if at.endswith("+"):
            first, last = at[:-1], str(_FOREVER)
        elif not dash:
            last = ""
        if not first.isdigit() or int(first) < 1 or (last and (not last.isdigit() or int(last) < int(first))):
            raise ValueError(f"{ENV}: {text!r}: expected an operation number N (1 or more), N+ or N-M")
        clauses.append(_Clause(action, kind, int(first), int(last) if last else None, code))
    return tuple(clauses), count


def _errno_of(name: str) -> int:
    if name.isdigit():
        return int(name)
    code = getattr(_errno, name.upper(), None)
    if not isinstance(code, int):
        raise ValueError(f"{ENV}: unknown errno {name!r} (EIO, ENOSPC, ...)")
    return code


def configure(spec: Union[str, None]) -> None:
    """Use ``spec`` (an ``LF_FAULTS`` value; None or "" for none) from now on, counting from zero."""
    global ACTIVE, _clauses, _count_path, _count_fd, _counts
    clauses, count = parse(spec or "")
    with _guard:
        if _count_fd is not None:
            os.close(_count_fd)
        _clauses, _count_path, _count_fd, _counts = clauses, count, None, {}
        ACTIVE = bool(clauses or count)


def hit(kind: str, what: Any = None) -> None:
    """An operation of ``kind`` is about to happen (``spawn``, ``worker``: has just happened), on ``what``.

    Counts it; then, if a clause says so, kills this process or raises OSError.
    """
    if not ACTIVE:
        return
    site = _site()
    with _guard:
        ordinal, of_kind = _count(kind, site, _describe(what))
        fired = next((c for c in _clauses if c.fires(ordinal if c.kind == "any" else of_kind)
                      and c.kind in ("any", kind)), None)
    if fired is None:
        return
    if fired.action == "crash":
        _say(f"{ENV}: crash at operation {ordinal} ({kind}{f' #{of_kind}' if of_kind else ''}) {_describe(what)} "
             f"at {site}, pid {os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
        return  # (never reached)
    if hasattr(what, "kill"):  # a process just started: as if it never had
        try:
            what.kill()
            what.wait()
        except OSError:
            pass
    raise OSError(fired.code, os.strerror(fired.code), *((what,) if isinstance(what, (str, os.PathLike)) else ()))


def _count(kind: str, site: str, what: str) -> tuple[int, int]:
    """This operation's ordinal among all, and among those of ``kind`` (the run's if there is a count file)."""
    if _count_path is None:
        _counts[kind] = _counts.get(kind, 0) + 1
        _counts["any"] = _counts.get("any", 0) + 1
        return _counts["any"], _counts[kind]
    global _count_fd
    if _count_fd is None:
        _count_fd = os.open(_count_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    line = f"{kind:<8} {os.getpid():>8} {site:<48.48} {what}"[:RECORD_BYTES - 1].ljust(RECORD_BYTES - 1) + "\n"
    os.write(_count_fd, line.encode("ascii", "replace"))
    end = os.lseek(_count_fd, 0, os.SEEK_CUR)  # O_APPEND: just after this record, whoever wrote before
    ordinal = end // RECORD_BYTES
    if not any(c.kind == kind for c in _clauses):
        return ordinal, 0
    with open(_count_path, "rb") as handle:
        before = handle.read(end)
    of_kind = sum(1 for i in range(0, len(before), RECORD_BYTES) if before[i:i + 8].rstrip() == kind.encode())
    return ordinal, of_kind


_HELPERS = ("fsync_dir", "ensure_dir", "write_marker", "remove_marker")


def _site() -> str:
    """file:line:function of the code whose operation it is (past safe.py and the small store helpers)."""
    frame = sys._getframe(2)
    while frame.f_back is not None and (frame.f_code.co_name in _HELPERS or frame.f_code.co_filename.endswith(
            (f"store{os.sep}safe.py", "contextlib.py"))):
        frame = frame.f_back
    parts = frame.f_code.co_filename.replace(os.sep, "/").split("/")
    return f"{'/'.join(parts[-2:])}:{frame.f_lineno}:{frame.f_code.co_name}"


def _describe(what: Any) -> str:
    if what is None or isinstance(what, int):
        return ""
    if hasattr(what, "args") and hasattr(what, "pid"):  # a Popen
        return f"pid {what.pid} {os.path.basename(str(what.args[0] if what.args else ''))}"
    text = os.fspath(what) if isinstance(what, os.PathLike) else str(what)
    return "/".join(text.split("/")[-3:])


def _say(text: str) -> None:
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass
    if _count_path is not None:
        try:
            with open(_count_path + ".crash", "a", encoding="utf-8") as handle:
                handle.write(text)
        except OSError:
            pass


def records(path: Union[str, os.PathLike]) -> list[Record]:
    """The operations a count file holds, in order (ordinals from 1)."""
    with open(path, "rb") as handle:
        data = handle.read()
    found = []
    for ordinal, start in enumerate(range(0, len(data) - len(data) % RECORD_BYTES, RECORD_BYTES), start=1):
        line = data[start:start + RECORD_BYTES].decode("ascii", "replace")
        kind, pid, rest = line[:8].strip(), line[9:17].strip(), line[18:].rstrip("\n")
        found.append(Record(ordinal, kind, int(pid) if pid.isdigit() else 0, rest[:48].strip(), rest[49:].strip()))
    return found


configure(os.environ.get(ENV))
