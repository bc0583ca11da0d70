"""The drop folder: flows/*.flow files and flows/*.start.json requests.

A dropped file is acted on only once it is *complete* (ARCHITECTURE rule 10):
it arrived by a rename into flows/ (the watcher saw it moved in, and it has not
changed since), or it has been unchanged (size and mtime) for the settle time,
measured on the engine's clock. A fresh file is looked at again when its settle
time is up (``next_look``/``due``), with no event needed.

- A ``*.flow`` file is *registered* (var/registry/<Name>.json records its
  content hash). A flow that appears while the supervisor runs is registered
  and starts one workflow with its input defaults; if an input has no default,
  nothing starts and the log says which. Flows already present when the
  supervisor starts are registered without starting anything; a changed flow
  is re-registered (running workflows keep the definition they pinned).
  A file that does not parse is reported once per content, with file:line:col.
- A ``*.start.json`` request ``{"flow": ..., "input": {...}, "id": optional}``
  starts that flow once, then moves to var/requests/done/ (or rejected/ with a
  ``.error`` file beside it). The steps:

  1. *claim*: rename ``flows/<name>`` to ``var/requests/taken/<stamp>-<token>-<name>``,
     ``token`` random hex made once. The token is the request's identity: it is
     in the file name, so it survives a crash, and no later file can get it
     (an inode number can: the filesystem recycles them). Both directories are
     fsynced before anything else happens. If var/ is on another filesystem
     (EXDEV), the request is first claimed by a rename inside flows/ to the
     hidden ``.lf-claim-<stamp>-<token>-<name>`` (atomic, so the claim itself
     never half-happens), then copied into taken/ (tmp, fsync, rename) and
     unlinked from flows/.
  2. start the workflow: id = the request's ``"id"``, else ``<flow>-req-<token[:12]>``;
     its WorkflowStarted records ``request = {"file", "identity": token}``.
  3. move the request from taken/ to done/ (same name), or write the ``.error``
     and move it to rejected/.

  At supervisor start and every rescan, whatever is in taken/ (and any hidden
  claim in flows/) is finished. Redoing step 2 is safe: if the workflow exists
  and its WorkflowStarted carries this request's identity, it is ours (the
  supervisor crashed before step 3) and the request goes to done/; if it was
  started by something else, the request is rejected naming the workflow.
  So a request starts at most one workflow, and a new file is always a new
  request.

Everything under var/ is opened below var/ without following a symlink
(store/safe.py): a symlinked var/requests, taken/, done/, rejected/ or
registry/ receives nothing; the error names the path and the request stays
where it is. Directories under var/requests and var/registry are 0700, the
files in them 0600 (moved-in requests are fchmod'ed). All time comes from the
engine's clock.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Union

from localflow import dsl
from localflow.core.inputs import missing_required
from localflow.core.jsonvalue import MAX_EVENT_BYTES, parse_json
from localflow.engine import Engine
from localflow.errors import (FlowSyntaxError, HistoryCorruptError, InvalidWorkflowId, LocalFlowError,
                              StorageError, UnsafePath, WorkflowExists, WorkflowNotFound)
from localflow.store import safe
from localflow.store.atomic import DIR_MODE, FILE_MODE, TMP_SUFFIX, ensure_dir, storage_error, write_atomic

REQUEST_SUFFIX = ".start.json"
FLOW_SUFFIX = ".flow"
CLAIM_PREFIX = ".lf-claim-"  # a request claimed inside flows/ on its way to another filesystem's var/
_SETTLE_S = 2.0  # a dropped file written in place is taken once unchanged this long
_TOKEN_BYTES = 8  # 16 hex digits of identity
_STAMP = "%Y%m%d-%H%M%S"
_CLAIMED_RE = re.compile(r"^(\d{8}-\d{6})-([0-9a-f]{16})-(.+)$", re.DOTALL)
_MAX_NAME_BYTES = 180  # of the dropped name kept in var/requests/ names (NAME_MAX is 255)
_MAX_REQUEST_BYTES = MAX_EVENT_BYTES
_OUTCOMES = ("done", "rejected")
# Errors that say nothing about the request itself: it stays claimed and is retried at the next rescan.
_TRANSIENT = (StorageError, UnsafePath, OSError)

Signature = tuple  # (st_dev, st_ino, st_size, st_mtime_ns) of a dropped file


class _Rejected(Exception):
    """A request that can never be started; the message goes to its .error file."""


class DropFolder:
    def __init__(self, engine: Engine, log: Callable[[str], None], on_started: Callable[[str], None],
                 settle_s: float = _SETTLE_S) -> None:
        self.engine = engine
        self.paths = engine.paths
        self.log = log
        self.on_started = on_started
        self.settle_ms = int(settle_s * 1000)
        self._reported: dict[str, str] = {}  # what was logged last per file: said once, not every rescan
        self._seen: dict[str, tuple[Signature, int]] = {}  # name -> (signature, clock ms when first seen so)
        self._arrived: dict[str, Signature] = {}  # name -> signature right after it was renamed into flows/
        self._arrived_guard = threading.Lock()  # note_arrival runs on the watcher's thread
        self._pending: dict[str, tuple[int, bool]] = {}  # name -> (look again at ms, start_new)

    # --- entry points ---------------------------------------------------------

    def note_arrival(self, path: Path) -> None:
        """The watcher saw ``path`` renamed into flows/: it is complete as long as it stays as it is now."""
        signature = _signature(path)
        if signature is not None:
            with self._arrived_guard:
                self._arrived[path.name] = signature

    def handle(self, path: Path, start_new: bool = True) -> None:
        """Look at one entry of flows/ (a hint or a rescan named it)."""
        name = path.name
        if name.startswith(".") or not (name.endswith(REQUEST_SUFFIX) or name.endswith(FLOW_SUFFIX)):
            return
        pending = self._pending.pop(name, None)
        if pending is not None:
            start_new = pending[1]  # the first sighting decides whether it was there at startup
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._forget(name)
            return
        if not stat.S_ISREG(st.st_mode):  # symlinks, directories, FIFOs: never taken
            self._forget(name)
            return
        ready_at = self._ready_at(name, st)
        if ready_at is not None:
            self._pending[name] = (ready_at, start_new)
            return
        self._forget(name)
        if name.endswith(REQUEST_SUFFIX):
            self._claim(path)
        else:
            self._flow(path, start_new)

    def due(self) -> list[tuple[Path, bool]]:
        """Fresh files whose settle time is up: (path, start_new) to hand back to ``handle``."""
        now = self.engine.clock()
        ready = [(name, start_new) for name, (at, start_new) in self._pending.items() if at <= now]
        return [(self.paths.flows_dir / name, start_new) for name, start_new in sorted(ready)]

    def next_look(self) -> Union[int, None]:
        """When (clock ms) the next fresh file's settle time is up, or None."""
        return min((at for at, _ in self._pending.values()), default=None)

    def recover(self, startup: bool = False) -> None:
        """Finish every claimed request: hidden claims in flows/, then var/requests/taken/."""
        taken = self.paths.requests_dir / "taken"
        if not os.path.lexists(self.paths.requests_dir):
            if not self._hidden_claims():
                return
        try:
            with self._private_dir(taken) as taken_fd:
                if startup:
                    for entry in os.listdir(taken_fd):
                        if entry.endswith(TMP_SUFFIX):
                            os.unlink(entry, dir_fd=taken_fd)  # a copy that never finished; its source is still there
                for hidden in self._hidden_claims():
                    try:
                        with _flows_dir(self.paths.flows_dir) as flows_fd:
                            self._import(flows_fd, hidden, hidden[len(CLAIM_PREFIX):])
                    except FileNotFoundError:
                        continue
                    except (LocalFlowError, OSError) as exc:
                        self._report(hidden, f"request {_shown(hidden)}: claimed but not moved to "
                                             f"{self.engine.display(taken)}: {_why(exc, taken)}")
                        continue
                    self._reported.pop(hidden, None)
                claimed_names = sorted(n for n in os.listdir(taken_fd)
                                       if _CLAIMED_RE.fullmatch(n) and n.endswith(REQUEST_SUFFIX))
        except (LocalFlowError, OSError) as exc:
            self._report("taken", f"drop folder: cannot finish claimed requests: {_why(exc, taken)}")
            return
        self._reported.pop("taken", None)
        for claimed in claimed_names:
            self._process(claimed)

    # --- completeness ---------------------------------------------------------

    def _ready_at(self, name: str, st: os.stat_result) -> Union[int, None]:
        """None if the file is complete, else the clock ms at which to look again."""
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._arrived_guard:
            arrived = self._arrived.get(name)
        if arrived == signature:
            return None
        now = self.engine.clock()
        seen = self._seen.get(name)
        if seen is None or seen[0] != signature:
            seen = (signature, now)
            self._seen[name] = seen
        # Unchanged since the earlier of: its mtime, and when we first saw it like this. An
        # mtime ahead of our clock only delays the start; one far behind it (a network
        # filesystem with a slow clock) would make a fresh file look settled.
        since = min(seen[1], st.st_mtime_ns // 1_000_000)
        ready_at = since + self.settle_ms
        return None if now >= ready_at else ready_at

    def _forget(self, name: str) -> None:
        self._seen.pop(name, None)
        with self._arrived_guard:
            self._arrived.pop(name, None)

    # --- flows ----------------------------------------------------------------

    def _flow(self, path: Path, start_new: bool) -> None:
        key = f"flow:{path.name}"
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        registry = self.paths.registry_dir / f"{path.stem}.json"
        try:
            known = self._registered(registry)
        except (LocalFlowError, OSError) as exc:
            self._report(key, f"flow {self.engine.display(path)}: not registered: {_why(exc, registry)}")
            return
        if known and known.get("flow_hash") == digest:
            self._reported.pop(key, None)
            return
        try:
            flow, source = dsl.read_flow_file(path, self.engine.display(path))
        except FlowSyntaxError as exc:
            self._report(key, f"flow {self.engine.display(path)} does not parse; nothing started:\n{exc}", digest)
            return
        digest = hashlib.sha256(source.encode("utf-8")).hexdigest()  # exactly what was parsed
        record = {"flow": flow.name, "flow_hash": digest, "registered_at": self.engine.clock()}
        try:
            ensure_dir(self.paths.registry_dir, self.paths.var_dir)
            with self._private_dir(self.paths.registry_dir):
                pass
            write_atomic(registry, json.dumps(record).encode(), self.paths.var_dir)
        except (LocalFlowError, OSError) as exc:
            self._report(key, f"flow {flow.name}: not registered: {_why(exc, registry)}")
            return
        self._reported.pop(key, None)
        if known:
            self.log(f"flow {flow.name} changed; registered the new definition (running workflows keep theirs)")
            return
        if not start_new:
            self.log(f"flow {flow.name} registered")
            return
        missing = missing_required(flow)
        if missing:
            self.log(f"flow {flow.name} registered; not started: input {', '.join(missing)} has no default")
            return
        started = self.engine.start(flow.name, {}, allow_path=False)
        self.log(f"new flow {flow.name}: started workflow {started}")
        self.on_started(started)

    def _registered(self, registry: Path) -> Union[dict, None]:
        if not os.path.lexists(registry):
            return None  # not registered yet
        try:
            known = json.loads(safe.read_bytes(self.paths.var_dir, registry))
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # a damaged record: register again
        return known if isinstance(known, dict) else None

    # --- requests: claim ------------------------------------------------------------

    def _claim(self, path: Path) -> None:
        """Rename the request into taken/ under a new identity, then process it."""
        name = path.name
        token = os.urandom(_TOKEN_BYTES).hex()
        stamp = time.strftime(_STAMP, time.gmtime(self.engine.clock() / 1000))
        claimed = f"{stamp}-{token}-{_short(name)}"
        taken = self.paths.requests_dir / "taken"
        try:
            with self._private_dir(taken) as taken_fd, _flows_dir(self.paths.flows_dir) as flows_fd:
                try:
                    os.rename(name, claimed, src_dir_fd=flows_fd, dst_dir_fd=taken_fd)
                except FileNotFoundError:
                    return  # gone before we took it: nothing to do
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    hidden = CLAIM_PREFIX + claimed
                    try:
                        os.rename(name, hidden, src_dir_fd=flows_fd, dst_dir_fd=flows_fd)
                    except FileNotFoundError:
                        return
                    os.fsync(flows_fd)
                    self._import(flows_fd, hidden, claimed)
                else:
                    os.fsync(taken_fd)
                    os.fsync(flows_fd)
        except (LocalFlowError, OSError) as exc:
            self._report(name, f"request {_shown(name)}: not taken, left in {self.engine.display(path.parent)}: "
                               f"{_why(exc, taken)}")
            return
        self._reported.pop(name, None)
        self._process(claimed)

    def _import(self, flows_fd: int, hidden: str, claimed: str) -> None:
        """Copy a hidden claim from flows/ into taken/ (another filesystem), then unlink it."""
        fd = os.open(hidden, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=flows_fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafePath(str(self.paths.flows_dir / hidden), "it is not a regular file")
            with self._private_dir(self.paths.requests_dir / "taken") as taken_fd:
                _copy_in(fd, taken_fd, claimed)
        finally:
            os.close(fd)
        os.unlink(hidden, dir_fd=flows_fd)
        os.fsync(flows_fd)

    def _hidden_claims(self) -> list[str]:
        try:
            names = os.listdir(self.paths.flows_dir)
        except OSError:
            return []
        return sorted(n for n in names if n.startswith(CLAIM_PREFIX)
                      and _CLAIMED_RE.fullmatch(n[len(CLAIM_PREFIX):]) and n.endswith(REQUEST_SUFFIX))

    # --- requests: process ----------------------------------------------------------

    def _process(self, claimed: str) -> None:
        """Start the workflow of a claimed request (once), then move it to done/ or rejected/."""
        match = _CLAIMED_RE.fullmatch(claimed)
        assert match is not None
        token, original = match.group(2), _shown(match.group(3))
        path = self.paths.requests_dir / "taken" / claimed
        try:
            try:
                outcome = self._start_request(path, token, original)
            except _Rejected as exc:
                self._reject(claimed, str(exc))
                return
            except LocalFlowError as exc:
                if isinstance(exc, _TRANSIENT):
                    raise
                self._reject(claimed, f"{original}: {exc}")
                return
            self._move(claimed, "done")
        except FileNotFoundError:
            return  # finished by someone else (or removed by the user)
        except _TRANSIENT as exc:
            self._report(claimed, f"request {original}: left in {self.engine.display(path.parent)} for now: "
                                  f"{_why(exc, path)}")
            return
        self._reported.pop(claimed, None)
        if outcome:
            self.log(outcome)

    def _start_request(self, path: Path, token: str, original: str) -> str:
        request = parse_json(self._read_claimed(path, original), "the request")
        if not isinstance(request, dict) or not isinstance(request.get("flow"), str):
            raise _Rejected(f'{original}: not a valid start request: a request is a JSON object like '
                            '{"flow": "Name", "input": {...}}')
        given = request.get("input", {})
        if not isinstance(given, dict):
            raise _Rejected(f'{original}: not a valid start request: "input" must be a JSON object')
        given_id = request.get("id")
        if given_id is not None and not isinstance(given_id, str):
            raise _Rejected(f'{original}: not a valid start request: "id" must be a string')
        flow = request["flow"]
        workflow_id = given_id or f"{flow[:80]}-req-{token[:12]}"
        holder = self._holder(workflow_id, token, original)
        if holder is None:
            try:
                started = self.engine.start(flow, given, workflow_id,
                                            request={"file": original, "identity": token}, allow_path=False)
            except WorkflowExists:
                holder = self._holder(workflow_id, token, original)
                if holder is None:
                    raise
            else:
                self.log(f"request {original}: started workflow {started}")
                self.on_started(started)
                return ""
        return f"request {original}: workflow {workflow_id} was already started by this request; finishing it"

    def _holder(self, workflow_id: str, token: str, original: str) -> Union[str, None]:
        """None if no workflow has the id; "" if it is this request's own; else raises _Rejected."""
        try:
            if not os.path.lexists(self.paths.workflow_dir(workflow_id)):
                return None
            loaded = self.engine.load(workflow_id)
        except (WorkflowNotFound, InvalidWorkflowId):
            return None  # absent, or an id start() will refuse with the reason
        except HistoryCorruptError as exc:
            raise _Rejected(f"{original}: workflow {workflow_id} already exists and its history cannot be "
                            f"read ({exc}); pick another \"id\"") from None
        started_by = getattr(loaded.events[0], "request", None) if loaded.events else None
        if isinstance(started_by, dict) and started_by.get("identity") == token:
            return ""
        state = loaded.state
        raise _Rejected(f"{original}: workflow {workflow_id} already exists (flow {state.flow.name}, "
                        f"status {state.status}); this request did not start it. Pick another \"id\", "
                        "or leave it out for a new one")

    def _read_claimed(self, path: Path, original: str) -> bytes:
        """The claimed request's bytes; made private (0600) on the way."""
        try:
            fd = safe.open_file(self.paths.var_dir, path, os.O_RDONLY | os.O_NONBLOCK)
        except UnsafePath:
            if _is_link(path):  # the dropped entry was swapped for a symlink as it was taken
                raise _Rejected(f"{original}: it is a symlink; a request must be a regular file") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _Rejected(f"{original}: not a regular file")
            data = _read_fd(fd, _MAX_REQUEST_BYTES + 1)
            if stat.S_IMODE(st.st_mode) != FILE_MODE:
                try:
                    os.fchmod(fd, FILE_MODE)
                except PermissionError:  # someone else's file: replace it by our own private copy
                    with safe.directory(self.paths.var_dir, path.parent) as dir_fd:
                        _copy_in(fd, dir_fd, path.name)
        finally:
            os.close(fd)
        if len(data) > _MAX_REQUEST_BYTES:
            raise _Rejected(f"{original}: the request is larger than {_MAX_REQUEST_BYTES} bytes")
        return data

    # --- requests: finish -----------------------------------------------------------

    def _reject(self, claimed: str, message: str) -> None:
        rejected = self.paths.requests_dir / "rejected"
        with self._private_dir(rejected):
            pass
        write_atomic(rejected / f"{claimed}.error", (message + "\n").encode("utf-8", "backslashreplace"),
                     self.paths.var_dir)
        self._move(claimed, "rejected")
        self._reported.pop(claimed, None)
        self.log(f"rejected {message}")

    def _move(self, claimed: str, outcome: str) -> None:
        """taken/<claimed> -> <outcome>/<claimed>, both directories fsynced; never through a symlink."""
        assert outcome in _OUTCOMES
        with safe.directory(self.paths.var_dir, self.paths.requests_dir / "taken") as src_fd, \
                self._private_dir(self.paths.requests_dir / outcome) as dst_fd:
            os.rename(claimed, claimed, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            os.fsync(dst_fd)
            os.fsync(src_fd)

    # --- helpers ----------------------------------------------------------------

    @contextmanager
    def _private_dir(self, path: Path) -> Iterator[int]:
        """A descriptor of ``path`` under var/ (made if missing), it and var/requests made 0700."""
        anchor = self.paths.var_dir
        if path != self.paths.requests_dir and self.paths.requests_dir in path.parents:
            with safe.directory(anchor, self.paths.requests_dir, create=True) as fd:
                _make_private(fd)
        with safe.directory(anchor, path, create=True) as fd:
            _make_private(fd)
            yield fd

    def _report(self, key: str, message: str, content: str = "") -> None:
        """Log ``message`` unless it is what was last said about ``key``: once, not every rescan."""
        said = f"{content}\0{message}"
        if self._reported.get(key) != said:
            self._reported[key] = said
            self.log(message)


def _make_private(fd: int) -> None:
    if stat.S_IMODE(os.fstat(fd).st_mode) != DIR_MODE:
        os.fchmod(fd, DIR_MODE)


@contextmanager
def _flows_dir(flows: Path) -> Iterator[int]:
    """flows/ is the user's folder (it may be a symlink itself); its entries are never followed."""
    fd = os.open(flows, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _copy_in(src_fd: int, dir_fd: int, name: str) -> None:
    """A private (0600) copy of ``src_fd`` as ``name`` in ``dir_fd``: tmp, fsync, rename, fsync the dir."""
    tmp = f"{name}.{os.getpid()}{TMP_SUFFIX}"
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE,
                  dir_fd=dir_fd)
    try:
        os.fchmod(out, FILE_MODE)
        os.lseek(src_fd, 0, os.SEEK_SET)
        while True:
            chunk = os.read(src_fd, 1 << 20)
            if not chunk:
                break
            safe.write_all(out, chunk)
        os.fsync(out)
    except OSError:
        os.unlink(tmp, dir_fd=dir_fd)
        raise
    finally:
        os.close(out)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def _read_fd(fd: int, limit: int) -> bytes:
    chunks = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _signature(path: Path) -> Union[Signature, None]:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _short(name: str) -> str:
    """The dropped name, cut (keeping its suffix) so that prefixed names stay under NAME_MAX."""
    raw = os.fsencode(name)
    if len(raw) <= _MAX_NAME_BYTES:
        return name
    suffix = REQUEST_SUFFIX.encode()
    return os.fsdecode(raw[:_MAX_NAME_BYTES - len(suffix)] + suffix)


def _shown(name: str) -> str:
    """A file name as it may appear in a log line or an event: valid text, no control characters."""
    text = os.fsencode(name).decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _why(exc: BaseException, path: Path) -> str:
    if isinstance(exc, LocalFlowError):
        return str(exc)
    if isinstance(exc, OSError):
        return str(storage_error("use", exc.filename or path, exc))
    return repr(exc)
