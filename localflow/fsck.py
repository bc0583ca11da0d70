"""`lf fsck`: check a home's var/ against the rules its files keep, and repair only what is provably safe.

Like ``sqlite3 PRAGMA integrity_check`` and etcd's ``etcdutl check``, it reads
everything and trusts nothing: each history line by line (seq contiguous from 1,
checksums, a torn tail, events that do not parse or do not fold, a WorkflowStarted
naming another folder), children whose parent is missing, timer markers against
the timers the histories leave pending, and the whole tree under var/ (stray files,
permissions, symlinks, none of them ever followed). Each finding names its file,
and its line for a history.

The checks are pure functions of bytes, names and modes (``check_history``,
``check_markers``, ``check_children``, ``classify``, ``mode_problem``); ``check``
is the shell that walks the disk, and ``repair`` fixes three things and nothing
else: a torn tail (cut under the workflow's lock by store/history.py's own repair,
which keeps the cut bytes in ``history.jsonl.torn-<offset>``), a stray timer
marker (removed), a missing marker for a pending timer (written). Everything else
is reported for a person to judge: a corrupt line is never truncated.
docs/fsck.md describes every kind of finding.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from localflow.core import events as ev
from localflow.core.state import WorkflowState, evolve, initial, repinned
from localflow.errors import LocalFlowError, WorkflowNotFound
from localflow.store import codec, history, locks, safe, timers
from localflow.store.paths import WORKFLOW_ID_RE, Paths, TimerMarker, parse_timer_marker
from localflow.store.creation import pid_alive

# Kinds of finding (docs/fsck.md)
UNREADABLE = "unreadable"  # could not be read at all: exit 3
TORN = "torn-tail"
UNPARSABLE = "unparsable-line"
CHECKSUM = "checksum"
SEQ = "seq"
EVENT = "bad-event"
FOLD = "fold"
WRONG_ID = "workflow-id"
NOT_STARTED = "not-started"
ORPHAN_CHILD = "orphan-child"
STRAY_MARKER = "stray-marker"
MISSING_MARKER = "missing-marker"
STRAY = "stray"
LEFTOVER = "leftover"
PERMISSIONS = "permissions"
SYMLINK = "symlink"

EXIT_CLEAN, EXIT_FINDINGS, EXIT_TROUBLE = 0, 1, 3
HISTORY = "history.jsonl"
_TORN_COPY_RE = re.compile(r"^history\.jsonl\.torn-\d+$")
_LOG_RE = re.compile(r"^.+\.\d+\.(in|out|err)$")
_CLAIMED_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{16}-.+$", re.DOTALL)
_TMP_PID_RE = re.compile(r"\.(\d+)(?:-\d+)?\.tmp$")  # <name>.<pid>[-<thread>].tmp (store/atomic.py, summaries.py)
_STAGING_RE = re.compile(r"^\.new-(\d+)-[0-9a-f]+$")  # store/creation.py
_MAX_DEPTH = 32
LOCK_WAIT_S = 10.0  # how long to wait for a workflow's append lock before saying it cannot be read


@dataclass(frozen=True)
class Finding:
    file: str  # relative to the home when inside it
    line: Optional[int]  # the history line (1-based), None when not about a line
    kind: str
    message: str
    repairable: bool = False
    repaired: Optional[str] = None  # what --repair did
    repair_failed: Optional[str] = None  # why --repair could not
    target: Any = field(default=None, compare=False, repr=False)  # what a repair acts on (not shown)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    @property
    def open(self) -> bool:
        """Still a problem (not repaired)."""
        return self.repaired is None

    def render(self) -> str:
        text = printable(f"{self.where}: {self.kind}: {self.message}")
        if self.repaired:
            return f"{text}\n    repaired: {self.repaired}"
        if self.repair_failed:
            return f"{text}\n    could not repair: {self.repair_failed}"
        return text + (" (lf fsck --repair fixes it)" if self.repairable else "")

    def to_json(self) -> dict[str, Any]:
        found = asdict(self)
        del found["target"]
        found["file"], found["message"] = printable(self.file), printable(self.message)
        return found


def printable(text: str) -> str:
    """Names found on disk may hold escape sequences or bytes that are not UTF-8: written as escapes,
    they never drive a terminal or break the output."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    workflows: int = 0
    markers: int = 0
    entries: int = 0

    @property
    def exit_code(self) -> int:
        if any(f.kind == UNREADABLE or f.repair_failed for f in self.findings):
            return EXIT_TROUBLE
        return EXIT_FINDINGS if any(f.open for f in self.findings) else EXIT_CLEAN

    def to_json(self) -> dict[str, Any]:
        return {"checked": {"workflows": self.workflows, "markers": self.markers, "entries": self.entries},
                "findings": [f.to_json() for f in self.findings],
                "open": sum(f.open for f in self.findings),
                "repaired": sum(not f.open for f in self.findings),
                "exit_code": self.exit_code}


# --- histories (pure) ---------------------------------------------------------------------


@dataclass
class HistoryCheck:
    findings: list[Finding]
    state: Optional[WorkflowState] = None  # folded from the whole history; None if it could not be
    parent: Optional[dict] = None  # WorkflowStarted.parent
    timer_lines: dict[int, int] = field(default_factory=dict)  # timer n -> line of its TimerStarted


def split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines and the torn tail, split exactly as store/history.py's ``parse`` does."""
    end = data.rfind(b"\n") + 1
    body, torn = data[:end], data[end:]
    lines = body.split(b"\n")[:-1] if body else []
    while lines and lines[-1].strip(b"\x00") == b"":
        torn = lines.pop() + b"\n" + torn
    return lines, torn


def check_history(file: str, data: bytes, folder: str) -> HistoryCheck:
    """Every problem of one history's bytes; ``folder`` is the name of the directory holding it."""
    lines, torn = split_lines(data)
    findings, records = _check_lines(file, lines)
    line_trouble = bool(findings)
    if torn and lines:
        findings.append(Finding(file, len(lines) + 1, TORN,
                                f"{len(torn)} bytes after the last complete line: a write cut short by a crash "
                                "(readers ignore them; the next append cuts them)", repairable=not line_trouble,
                                target=folder))
    if not lines:
        what = f"only {len(torn)} bytes and no complete line" if torn else "it is empty"
        findings.append(Finding(file, 1, NOT_STARTED, f"{what}: a creation that never finished, nothing reads it"))
        return HistoryCheck(findings)
    result = _fold(file, records, folder)
    result.findings[:0] = findings
    if line_trouble:
        result.state = None  # folded from a prefix only: not the workflow's state
    return result


def _check_lines(file: str, lines: list[bytes]) -> tuple[list[Finding], list[dict]]:
    """Findings about single lines, and the records of the valid prefix (before the first bad line)."""
    findings: list[Finding] = []
    records: list[dict] = []
    previous = 0  # the seq the line before held (or its line number if it did not decode)
    for number, line in enumerate(lines, start=1):
        try:
            record = codec.decode(line)
        except codec.LineError as exc:
            kind = CHECKSUM if "checksum" in str(exc) else UNPARSABLE
            findings.append(Finding(file, number, kind, str(exc)))
            previous = number
            continue
        if record["seq"] != previous + 1:
            what = "a repeat" if record["seq"] <= previous else "a gap"
            findings.append(Finding(file, number, SEQ, f"expected seq {previous + 1}, found {record['seq']} ({what})"))
        previous = record["seq"]
        if not findings:
            records.append(record)
    return findings, records


def _fold(file: str, records: list[dict], folder: str) -> HistoryCheck:
    result = HistoryCheck([])
    try:
        flow = repinned(records)
    except Exception as exc:  # noqa: BLE001 - a broken history may break anything; fsck reports, never crashes
        result.findings.append(Finding(file, None, FOLD, f"the flow a resume re-pinned cannot be read: {_text(exc)}"))
        return result
    state = None
    for number, record in enumerate(records, start=1):
        try:
            event = ev.from_record(record)
        except Exception as exc:  # noqa: BLE001
            result.findings.append(Finding(file, number, EVENT, f"{record.get('type')!r} does not parse: {_text(exc)}"))
            return result
        try:
            if state is None:
                if not isinstance(event, ev.WorkflowStarted):
                    raise ValueError("a history must begin with WorkflowStarted")
                state = initial(event, flow)
                result.parent = event.parent if isinstance(event.parent, dict) else None
                if event.workflow_id != folder:
                    result.findings.append(Finding(file, 1, WRONG_ID, f"WorkflowStarted names workflow "
                                                   f"{event.workflow_id!r} but its folder is {folder!r}"))
            else:
                state = evolve(state, event)
        except Exception as exc:  # noqa: BLE001
            result.findings.append(Finding(file, number, FOLD, f"{type(event).__name__} does not fold: {_text(exc)}"))
            return result
        if isinstance(event, ev.TimerStarted):
            result.timer_lines[event.timer] = number
    result.state = state
    return result


def _text(exc: Exception) -> str:
    return str(exc) if isinstance(exc, (LocalFlowError, ValueError)) else f"{type(exc).__name__}: {exc}"


# --- markers and children (pure) -------------------------------------------------------------


def expected_markers(workflow_id: str, state: WorkflowState) -> set[TimerMarker]:
    """The markers the executor keeps for a workflow (supervisor/executor.py ``_carry_out_now``)."""
    if state.held:  # imported and held: nothing of it runs here, its timers have no marker
        return set()
    return {TimerMarker(t.fire_at, workflow_id, t.timer) for t in state.timers.values() if state.timer_wanted(t)}


def check_markers(timers_dir: str, present: list[TimerMarker], checked: dict[str, HistoryCheck],
                  history_file: Callable[[str], str]) -> list[Finding]:
    """Markers without a pending timer, pending timers without a marker.

    ``checked`` holds every workflow whose markers are judged; a marker of a workflow that
    is not there at all is stray; one of a workflow whose state is unknown is left alone.
    """
    findings = []
    for marker in present:
        found = checked.get(marker.workflow_id)
        if found is not None and found.state is None:
            continue  # its history is damaged: nobody can say which timers it has pending
        if found is None or marker not in expected_markers(marker.workflow_id, found.state):
            why = ("no such workflow" if found is None
                   else f"timer {marker.timer} of {marker.workflow_id} is not pending at {marker.fire_at_ms}")
            findings.append(Finding(f"{timers_dir}/{marker.name}", None, STRAY_MARKER, f"{why}: nothing fires it",
                                    repairable=True, target=marker))
    names = {m.name for m in present}
    for workflow_id, found in sorted(checked.items()):
        if found.state is None:
            continue
        for marker in sorted(expected_markers(workflow_id, found.state), key=lambda m: m.name):
            if marker.name not in names:
                line = found.timer_lines.get(marker.timer)
                started = f" (TimerStarted at {history_file(workflow_id)}:{line})" if line else ""
                findings.append(Finding(f"{timers_dir}/{marker.name}", None, MISSING_MARKER,
                                        f"timer {marker.timer} of {workflow_id}{started} is pending but has no "
                                        "marker: a supervisor started later reads the schedule from the markers",
                                        repairable=True, target=marker))
    return findings


def check_children(checked: dict[str, HistoryCheck], parent_exists: Callable[[str], bool],
                   history_file: Callable[[str], str]) -> list[Finding]:
    """Unfinished children whose parent is missing. A detached child has no parent to wait for it, and a
    finished child's parent may have been pruned since: neither is a finding."""
    findings = []
    for workflow_id, found in sorted(checked.items()):
        parent = found.parent
        if not parent or parent.get("detached") or found.state is None or found.state.terminal:
            continue
        parent_id = parent.get("workflow_id")
        if isinstance(parent_id, str) and not parent_exists(parent_id):
            findings.append(Finding(history_file(workflow_id), 1, ORPHAN_CHILD,
                                    f"child of {parent_id!r} (step {parent.get('step')!r}) but that workflow is "
                                    "missing: nobody will take its result"))
    return findings


# --- the tree under var/ (pure) ---------------------------------------------------------------


def classify(parts: tuple[str, ...], is_dir: bool) -> tuple[Optional[str], str]:
    """(kind, message) for an entry at var/<parts...>: (None, "") when it belongs there.

    Only the layout LocalFlow writes belongs (store/paths.py): a stray entry is reported once,
    not each entry below it.
    """
    name = parts[-1]
    if name.endswith(".tmp") and not is_dir:
        return LEFTOVER, "left by an interrupted atomic write (a crash); safe to delete once no LocalFlow process runs"
    allowed = _ALLOWED.get(len(parts))
    if allowed is not None and allowed(parts, is_dir):
        return None, ""
    if len(parts) == 2 and parts[0] == "workflows" and is_dir and _STAGING_RE.fullmatch(name):
        return LEFTOVER, "a workflow creation that never finished; the supervisor removes it when it starts"
    what = "directory" if is_dir else "file"
    return STRAY, f"a {what} LocalFlow never writes here"


def _top(parts: tuple[str, ...], is_dir: bool) -> bool:
    if is_dir:
        return parts[0] in ("workflows", "timers", "requests", "registry", "schedules")
    return parts[0] in ("supervisor.lock", "supervisor.json")


def _second(parts: tuple[str, ...], is_dir: bool) -> bool:
    top, name = parts
    if top == "workflows":
        return is_dir and bool(WORKFLOW_ID_RE.fullmatch(name))
    if top == "timers":
        return not is_dir and parse_timer_marker(name) is not None
    if top == "requests":
        return is_dir and name in ("taken", "done", "rejected")
    if top == "registry":
        return not is_dir and name.endswith(".json")
    if top == "schedules":
        return not is_dir and (name.endswith(".json") or name == ".lock")
    return False


def _third(parts: tuple[str, ...], is_dir: bool) -> bool:
    top, _, name = parts
    if top == "workflows":
        if is_dir:
            return name == "logs"
        return name in (HISTORY, "lock", "summary.json") or bool(_TORN_COPY_RE.fullmatch(name))
    if top == "requests":
        return not is_dir and bool(_CLAIMED_RE.fullmatch(name))
    return False


def _fourth(parts: tuple[str, ...], is_dir: bool) -> bool:
    return parts[0] == "workflows" and parts[2] == "logs" and not is_dir and bool(_LOG_RE.fullmatch(parts[3]))


_ALLOWED = {1: _top, 2: _second, 3: _third, 4: _fourth}


def mode_problem(mode: int) -> Optional[str]:
    """What is wrong with an entry's permission bits (LocalFlow makes directories 0700, files 0600)."""
    perms = stat.S_IMODE(mode)
    problems = []
    need = 0o700 if stat.S_ISDIR(mode) else 0o600
    if perms & need != need:
        problems.append(f"the owner cannot {'list, enter or write' if stat.S_ISDIR(mode) else 'read or write'} it")
    writable = [who for who, bit in (("group", 0o020), ("others", 0o002)) if perms & bit]
    if writable:
        problems.append(f"writable by {' and '.join(writable)}")
    return f"mode {perms:04o}: {'; '.join(problems)}" if problems else None


def tmp_pid(name: str) -> Optional[int]:
    """The pid a leftover's name carries (``x.<pid>.tmp``, ``.new-<pid>-<hex>``), if any."""
    match = _TMP_PID_RE.search(name) or _STAGING_RE.fullmatch(name)
    return int(match.group(1)) if match else None


# --- the shell: walk, read, repair -----------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    parts: tuple[str, ...]  # below var/
    mode: int
    target: str = ""  # a symlink's target (never followed)


def walk(var_dir: Path, start: tuple[str, ...] = ()) -> Iterator[Union[Entry, Finding]]:
    """Every entry below var/<start...>, depth first, each directory opened with O_NOFOLLOW relative to its
    parent: a symlink is reported as an entry, never entered. A directory that cannot be listed is a Finding."""
    try:
        with safe.directory(var_dir, var_dir.joinpath(*start)) as fd:
            yield from _walk_fd(fd, start, var_dir)
    except (OSError, LocalFlowError) as exc:
        yield Finding(_shown(var_dir, start), None, UNREADABLE, f"cannot list it: {_why(exc)}")


def _walk_fd(fd: int, parts: tuple[str, ...], var_dir: Path) -> Iterator[Union[Entry, Finding]]:
    try:
        names = sorted(os.listdir(fd))
    except OSError as exc:
        yield Finding(_shown(var_dir, parts), None, UNREADABLE, f"cannot list it: {_why(exc)}")
        return
    for name in names:
        here = (*parts, name)
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            target = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(info.st_mode) else ""
        except FileNotFoundError:
            continue  # gone meanwhile (a live supervisor's own work)
        except OSError as exc:
            yield Finding(_shown(var_dir, here), None, UNREADABLE, f"cannot stat it: {_why(exc)}")
            continue
        yield Entry(here, info.st_mode, target)
        if stat.S_ISDIR(info.st_mode) and len(here) < _MAX_DEPTH:
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                yield Finding(_shown(var_dir, here), None, UNREADABLE, f"cannot open it: {_why(exc)}")
                continue
            try:
                yield from _walk_fd(child, here, var_dir)
            finally:
                os.close(child)


def _shown(var_dir: Optional[Path], parts: tuple[str, ...]) -> str:
    return "/".join(("var", *parts))


def _why(exc: BaseException) -> str:
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


def tree_findings(entries: list[Entry], alive: Callable[[int], bool] = pid_alive) -> list[Finding]:
    """Symlinks, permissions and stray entries among ``entries``."""
    findings: list[Finding] = []
    stray_dirs: list[tuple[str, ...]] = []
    for entry in entries:
        shown = _shown(None, entry.parts)
        if stat.S_ISLNK(entry.mode):
            findings.append(Finding(shown, None, SYMLINK, f"a symlink to {entry.target!r}: LocalFlow never follows "
                                                          "one below var/ (move it aside)"))
            continue
        problem = mode_problem(entry.mode)
        if problem:
            findings.append(Finding(shown, None, PERMISSIONS, problem))
        is_dir = stat.S_ISDIR(entry.mode)
        if any(entry.parts[:len(d)] == d for d in stray_dirs):
            continue
        if not is_dir and not stat.S_ISREG(entry.mode):
            kind, message = STRAY, "not a regular file or a directory"
        else:
            kind, message = classify(entry.parts, is_dir)
        if kind == LEFTOVER and (pid := tmp_pid(entry.parts[-1])) is not None and alive(pid):
            kind = None  # its writer is still at work
        if kind is not None:
            findings.append(Finding(shown, None, kind, message))
            if is_dir:
                stray_dirs.append(entry.parts)
    return findings


def check(paths: Paths, ids: Optional[list[str]] = None) -> Report:
    """Check the whole var/ of ``paths``, or only the workflows ``ids`` (their folders and markers)."""
    report = Report()
    var_dir = paths.var_dir
    if not var_dir.is_dir():
        return report
    if ids is None:
        tree = _collect(walk(var_dir), report)
        problem = mode_problem(os.stat(var_dir).st_mode)  # var/ may be a symlink (to another disk): its target's
        if problem:
            report.findings.append(Finding("var", None, PERMISSIONS, problem))
        marker_entries = tree
    else:
        tree = []
        for workflow_id in ids:
            tree += _collect(_workflow_tree(paths, workflow_id), report)
        timers_here = os.path.lexists(paths.timers_dir) and not paths.timers_dir.is_symlink()
        marker_entries = _collect(walk(var_dir, ("timers",)), report) if timers_here else []
    report.findings += tree_findings(tree)
    report.entries = len(tree)
    checked = _check_histories(paths, tree, report)
    report.workflows = len(checked)
    markers = [m for m in _markers(marker_entries) if ids is None or m.workflow_id in ids]
    report.markers = len(markers)
    report.findings += check_children(checked, lambda i: os.path.lexists(paths.history(i)), _history_file)
    report.findings += check_markers("var/timers", markers, checked, _history_file)
    report.findings.sort(key=lambda f: (f.file, f.line or 0))
    return report


def _history_file(workflow_id: str) -> str:
    return f"var/workflows/{workflow_id}/{HISTORY}"


def _collect(items: Iterator[Union[Entry, Finding]], report: Report) -> list[Entry]:
    entries = []
    for item in items:
        (entries.append if isinstance(item, Entry) else report.findings.append)(item)
    return entries


def _workflow_tree(paths: Paths, workflow_id: str) -> Iterator[Union[Entry, Finding]]:
    """One workflow's folder entry (WorkflowNotFound if there is none) and everything below it."""
    try:
        info = os.lstat(paths.workflow_dir(workflow_id))
    except FileNotFoundError:
        raise WorkflowNotFound(workflow_id) from None
    parts = ("workflows", workflow_id)
    target = os.readlink(paths.workflow_dir(workflow_id)) if stat.S_ISLNK(info.st_mode) else ""
    yield Entry(parts, info.st_mode, target)
    if stat.S_ISDIR(info.st_mode):
        yield from walk(paths.var_dir, parts)


def _markers(entries: list[Entry]) -> list[TimerMarker]:
    found = [parse_timer_marker(e.parts[1]) for e in entries
             if len(e.parts) == 2 and e.parts[0] == "timers" and stat.S_ISREG(e.mode)]
    return [m for m in found if m is not None]


def _check_histories(paths: Paths, entries: list[Entry], report: Report) -> dict[str, HistoryCheck]:
    """Every workflow folder's history, checked; a folder whose history cannot be judged is there with no state
    (so its markers are left alone)."""
    folders = {e.parts[1]: e for e in entries if len(e.parts) == 2 and e.parts[0] == "workflows"
               and (stat.S_ISDIR(e.mode) or stat.S_ISLNK(e.mode)) and WORKFLOW_ID_RE.fullmatch(e.parts[1])}
    files = {(e.parts[1], e.parts[2]): e for e in entries if len(e.parts) == 3 and e.parts[0] == "workflows"}
    checked: dict[str, HistoryCheck] = {}
    for workflow_id in sorted(folders):
        shown = _history_file(workflow_id)
        entry = files.get((workflow_id, HISTORY))
        checked[workflow_id] = HistoryCheck([])
        if stat.S_ISLNK(folders[workflow_id].mode):
            continue  # reported by the tree walk, never entered
        if entry is None:
            report.findings.append(Finding(f"var/workflows/{workflow_id}", None, NOT_STARTED,
                                           f"a workflow folder without {HISTORY}: nothing reads it"))
            continue
        if not stat.S_ISREG(entry.mode):
            continue  # a symlink or a directory there: reported by the tree walk, never read
        try:
            data = _read_locked(paths, workflow_id, files.get((workflow_id, "lock")))
        except (OSError, LocalFlowError) as exc:
            report.findings.append(Finding(shown, None, UNREADABLE, f"cannot read it: {_why(exc)}"))
            continue
        found = check_history(shown, data, workflow_id)
        report.findings += found.findings
        checked[workflow_id] = found
    return checked


def _read_locked(paths: Paths, workflow_id: str, lock: Optional[Entry]) -> bytes:
    """The history's bytes, read under its append lock when it has one (so no append is half seen).
    A missing lock file is not created: fsck writes nothing unless asked to repair."""
    path = paths.history(workflow_id)
    if lock is None or not stat.S_ISREG(lock.mode):
        return history.read_bytes(path)
    with locks.hold(paths.lock(workflow_id), timeout=LOCK_WAIT_S):
        return history.read_bytes(path)


def repair(paths: Paths, report: Report) -> Report:
    """Carry out the repairs of every repairable finding; each says what it did, or why it could not."""
    done = []
    for finding in report.findings:
        if not finding.repairable or not finding.open:
            done.append(finding)
            continue
        try:
            what = _repair_one(paths, finding)
        except (OSError, LocalFlowError) as exc:
            done.append(replace(finding, repair_failed=_why(exc)))
            continue
        done.append(replace(finding, repaired=what))
    report.findings = done
    return report


def _repair_one(paths: Paths, finding: Finding) -> str:
    if finding.kind == STRAY_MARKER:
        timers.remove_marker(paths, finding.target)
        return "removed the marker"
    if finding.kind == MISSING_MARKER:
        timers.write_marker(paths, finding.target)
        return "wrote the marker"
    if finding.kind == TORN:
        workflow_id = finding.target
        with locks.hold(paths.lock(workflow_id), timeout=LOCK_WAIT_S):
            current = history.read(paths.history(workflow_id))  # again, under the lock: what is there now
            if not current.torn:
                return "nothing to do: the tail was already cut (by an append since the check)"
            cut, offset = len(current.torn), current.valid_size
            history.repair_torn_tail(current)
        return f"cut {cut} bytes at offset {offset}; they are kept in {HISTORY}.torn-{offset}"
    raise LocalFlowError(f"no repair for {finding.kind}")
