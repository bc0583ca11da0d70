"""Following workflows as they change: file events wake the reader, the history says what changed.

What the live views (`lf watch`, `lf history --follow`, `lf result --wait`, `lf top`) share:

- ``Wakeup`` asks watchdog for the kernel's created, closed-after-writing and moved events
  of a few folders (as the supervisor does, supervisor/watch.py), and only notes them: which
  workflow folder an event was in, and that something happened. The reader sleeps on
  ``wait(timeout)`` until then. Events are hints (ARCHITECTURE rule 8): a slow poll (the
  ``timeout``, a second or more) catches anything the kernel dropped, and if watchdog cannot
  watch at all (no inotify left, a folder missing) the same slow poll is all there is. A
  reader never spins: between two reads it waits for an event or the poll period.
- ``Tail`` reads one history incrementally (the store's cursor): each ``poll`` costs a
  ``stat`` when nothing was appended, and reads and folds only the new lines otherwise.

Nothing here writes: a watcher can never disturb what it watches.
"""

from __future__ import annotations

import logging

import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Union

from localflow.core import events as ev
from localflow.core.state import WorkflowState, evolve, initial, repinned
from localflow.engine import Engine
from localflow.errors import HistoryCorruptError, WorkflowNotFound
from localflow.store.base import Cursor

POLL_S = 2.0  # the slow poll: how long a reader sleeps when no file event comes


def quiet_watchdog() -> None:
    """watchdog's own log lines never reach a command's output: with no handler of its own its logger
    falls back to stderr ("InotifyEmitter.queue_events() called when the thread is inactive" when an
    event arrives as a watcher stops). A watcher here is only a hint to read again: nothing is lost."""
    watchdog_log = logging.getLogger("watchdog")
    if not any(isinstance(h, logging.NullHandler) for h in watchdog_log.handlers):
        watchdog_log.addHandler(logging.NullHandler())


class Wakeup:
    """Wakes a reader when something changes under the watched folders (a context manager).

    ``watch`` is a list of (folder, recursive). ``workflows_dir``, when given, lets
    ``drain`` say which workflow folders the events were in.
    """

    def __init__(self, watch: Iterable[tuple[Path, bool]], workflows_dir: Union[Path, None] = None) -> None:
        self._event = threading.Event()
        self._guard = threading.Lock()
        self._changed: set[str] = set()
        self._everything = False  # an event we could not place: the reader should look at everything
        self._root = str(workflows_dir) if workflows_dir is not None else None
        self._watch = list(watch)
        self._observer = None
        self.watching = False  # False: only the slow poll (watchdog could not start)

    def __enter__(self) -> "Wakeup":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            from watchdog.events import (DirCreatedEvent, DirMovedEvent, FileClosedEvent, FileCreatedEvent,
                                         FileMovedEvent)
            from watchdog.observers import Observer

            wanted = [FileCreatedEvent, DirCreatedEvent, FileClosedEvent, FileMovedEvent, DirMovedEvent]
            quiet_watchdog()
            observer = Observer()
        except Exception:  # noqa: BLE001 - no watchdog at all: poll
            return
        try:
            handler = _Handler(self._hint)
            for folder, recursive in self._watch:
                if folder.is_dir() and not folder.is_symlink():
                    observer.schedule(handler, str(folder), recursive=recursive, event_filter=wanted)
            observer.daemon = True
            observer.start()
        except Exception:  # noqa: BLE001 - no watcher (inotify limits, a folder that went away): poll
            try:
                observer.stop()  # an emitter that did start holds an inotify instance: give it back
            except Exception:  # noqa: BLE001
                pass
            self.watching = False
            return
        self._observer = observer
        self.watching = True

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            try:
                observer.stop()
            except Exception:  # noqa: BLE001 - it is going away anyway
                pass

    def add(self, folder: Path, recursive: bool = False) -> object:
        """Watch one more folder (a child workflow's, once it exists); returns a handle for ``remove``
        (None if it could not be watched: the slow poll still sees it)."""
        observer = self._observer
        if observer is None or not folder.is_dir() or folder.is_symlink():
            return None
        try:
            from watchdog.events import FileClosedEvent, FileCreatedEvent, FileMovedEvent

            return observer.schedule(_Handler(self._hint), str(folder), recursive=recursive,
                                     event_filter=[FileCreatedEvent, FileClosedEvent, FileMovedEvent])
        except Exception:  # noqa: BLE001 - the slow poll still sees it
            return None

    def remove(self, handle: object) -> None:
        """Stop watching what ``add`` returned ``handle`` for."""
        observer = self._observer
        if observer is None or handle is None:
            return
        try:
            observer.unschedule(handle)
        except Exception:  # noqa: BLE001 - already gone (its folder was removed)
            pass

    def wait(self, timeout: float) -> bool:
        """Sleep until an event or ``timeout`` seconds; True if an event woke us."""
        woke = self._event.wait(max(timeout, 0.0))
        self._event.clear()
        return woke

    def nudge(self) -> None:
        """Wake the reader now (a signal handler, a test)."""
        self._event.set()

    def drain(self) -> tuple[set[str], bool]:
        """The workflow folders events were in since the last drain, and whether some event could not
        be placed (then the reader should check everything)."""
        with self._guard:
            changed, everything = self._changed, self._everything
            self._changed, self._everything = set(), False
        return changed, everything

    def _hint(self, path: str) -> None:
        if self._root is not None:
            rest = path[len(self._root) + 1:] if path.startswith(self._root + "/") else None
            workflow = rest.split("/", 1)[0] if rest else ""
            with self._guard:
                if workflow and not workflow.startswith("."):
                    self._changed.add(workflow)
                elif rest is None:
                    self._everything = True
        self._event.set()


class _Handler:
    """watchdog's handler protocol, reduced to noting a path; side files are ignored (they change
    on every line an activity prints) and nothing may raise into watchdog's thread."""

    def __init__(self, hint: Callable[[str], None]) -> None:
        self.hint = hint

    def dispatch(self, event: object) -> None:
        try:
            path = getattr(event, "dest_path", "") or getattr(event, "src_path", "")
            path = path.decode() if isinstance(path, bytes) else str(path)
            name = path.rsplit("/", 1)[-1]
            if "/logs/" in path or name.endswith((".tmp", ".lock")) or name == "lock" or name == "summary.json":
                return
            self.hint(path)
        except Exception:  # noqa: BLE001 - never kill the observer thread
            pass


class Tail:
    """One workflow's history, read incrementally: ``poll()`` returns the events appended since."""

    def __init__(self, engine: Engine, workflow_id: str) -> None:
        self.engine = engine
        self.workflow_id = workflow_id
        self.cursor: Union[Cursor, None] = None
        self.state: Union[WorkflowState, None] = None
        self.events: list[ev.Event] = []

    def poll(self) -> list[ev.Event]:
        """New events (all of them on the first call); WorkflowNotFound, HistoryCorruptError as the store says."""
        if self.cursor is not None and not self.engine.store.changed(self.workflow_id, self.cursor):
            return []
        chunk = self.engine.store.read(self.workflow_id, self.cursor)
        if not chunk.whole and repinned(chunk.records) is not None:
            chunk = self.engine.store.read(self.workflow_id)  # `lf resume --flow` re-pinned: fold it all again
        if chunk.whole:
            loaded = self.engine._fold(self.workflow_id, chunk.records, chunk.cursor.size)
            known = self.events[-1].seq if self.events else 0
            self.cursor, self.state, self.events = chunk.cursor, loaded.state, loaded.events
            return [e for e in loaded.events if e.seq > known]
        fresh = []
        for record in chunk.records:
            try:
                event = ev.from_record(record)
                self.state = evolve(self.state, event) if self.state is not None else initial(event)
            except Exception as exc:  # noqa: BLE001 - the same checks as Engine._fold, named by line
                raise HistoryCorruptError(str(self.engine.paths.history(self.workflow_id)), record.get("seq", 0),
                                          str(exc)) from None
            fresh.append(event)
        self.events.extend(fresh)
        self.cursor = chunk.cursor
        return fresh

    @property
    def ended(self) -> bool:
        """Over, as far as a watcher goes: ended, or found nondeterministic (nothing more is decided)."""
        return self.state is not None and (self.state.terminal or self.state.divergence is not None)


def follow(engine: Engine, workflow_id: str, on_events: Callable[[Tail, list[ev.Event]], None],
           timeout: Union[float, None] = None, poll_s: float = POLL_S, children: bool = False) -> Tail:
    """Call ``on_events`` with each batch of new events of ``workflow_id`` (first: all of them) until it
    ends or ``timeout`` seconds pass; returns its tail (``tail.ended`` says which). With ``children``,
    the events of the child workflows it starts too (``tail.workflow_id`` tells them apart).

    File events wake it (the workflow's folder; with ``children``, var/workflows/ too, where
    a child's folder appears); without one it looks again every ``poll_s`` seconds.
    """
    tails = {workflow_id: Tail(engine, workflow_id)}
    deadline = None if timeout is None else time.monotonic() + timeout
    watch = [(engine.paths.workflow_dir(workflow_id), False)]
    if children:
        watch.append((engine.paths.workflows_dir, False))
    with Wakeup(watch) as wake:
        while True:
            for wid, tail in list(tails.items()):
                first = tail.cursor is None
                try:
                    fresh = tail.poll()
                except WorkflowNotFound:
                    if wid == workflow_id:
                        raise
                    continue  # a child the supervisor has not created yet
                if first and wid != workflow_id:
                    wake.add(engine.paths.workflow_dir(wid))
                if fresh:
                    on_events(tail, fresh)
                if children:
                    for child in _children(tail):
                        tails.setdefault(child, Tail(engine, child))
            main = tails[workflow_id]
            if main.ended:
                return main
            left = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
            if left <= 0:
                return main
            wake.wait(left)


def _children(tail: Tail) -> list[str]:
    """The attached child workflows a history has started (detached ones run on their own)."""
    steps = tail.state.steps.values() if tail.state is not None else ()
    return [s.child_id for s in steps if s.kind == "child" and s.child_id and not s.detached]
