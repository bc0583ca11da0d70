"""Watchdog handler: turns filesystem events into hints for the supervisor loop.

Filesystem events are hints, never truth (litestream, dramatiq): the handler
only records *what* changed and the loop re-reads it; a rescan catches anything
inotify dropped. It asks the kernel only for created, closed-after-writing and
moved events (an atomic rename arrives as a move; an append ends with a close),
so reads, opens and each write of an activity's output cost nothing; and it
ignores, with string checks before anything else:
- deletions: nothing to run when a file goes away;
- activity logs (``logs/``), lock files and ``*.tmp``: our own side files, whose
  writes would otherwise wake the loop on every line an activity prints;
- directories themselves, except a new workflow directory;
- names starting with ``.``: workflow staging directories (``var/workflows/.new-*``,
  renamed into place whole, which is the event that counts), and hidden files in
  flows/ (editor swap files, requests claimed on their way to var/).
A drop-folder file that arrived by a rename into flows/ (a moved event) is
reported as such: it is complete, so it need not wait the settle time.
A handler exception is logged and swallowed so it can never kill the observer. If the
observer dies anyway (a watchdog bug, an emitter thread that hit an I/O error), nothing
says so: the supervisor asks ``observer_alive`` on every pass and starts a new one. And
watchdog only *logs* what goes wrong inside its threads (the kernel's inotify queue
overflowed and events were lost, a watch could not be added): ``WatchdogWarnings``
passes those lines to the supervisor's log and asks for a rescan at once, which
catches up whatever was missed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Union

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from localflow.store.paths import Paths, parse_timer_marker

_RELEVANT = {"created", "modified", "closed", "moved"}
_WANTED = [FileCreatedEvent, DirCreatedEvent, FileClosedEvent, FileMovedEvent, DirMovedEvent]


class Hints(FileSystemEventHandler):
    def __init__(
        self,
        paths: Paths,
        on_workflow: Callable[[str], None],
        on_timer: Callable[[str, int], None],
        on_drop: Callable[[Path, bool], None],  # (path, arrived by rename)
        log: Callable[[str], None],
        on_schedule: Union[Callable[[str], None], None] = None,  # a var/schedules/<name>.json was written
    ) -> None:
        self.paths = paths
        self._schedules = str(paths.schedules_dir)
        self.on_schedule = on_schedule
        self._timers = str(paths.timers_dir)
        self._flows = str(paths.flows_dir)
        self._workflows = str(paths.workflows_dir)
        self.on_workflow = on_workflow
        self.on_timer = on_timer
        self.on_drop = on_drop
        self.log = log

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            if event.event_type not in _RELEVANT:
                return
            target = getattr(event, "dest_path", "") or event.src_path
            moved = event.event_type == "moved" and bool(getattr(event, "dest_path", ""))
            self._route(target if isinstance(target, str) else target.decode(), event.is_directory, moved)
        except Exception as exc:  # never let a hint kill the observer thread
            self.log(f"watch: ignored {event!r}: {exc}")

    def _route(self, path: "Path | str", is_directory: bool, moved: bool = False) -> None:
        parent, _, name = str(path).rpartition("/")
        if name.endswith(".tmp") or name.startswith("."):
            return
        if parent == self._timers:
            marker = parse_timer_marker(name)
            if marker is not None:
                self.on_timer(marker.workflow_id, marker.fire_at_ms)
        elif parent == self._flows:
            if name.endswith(".flow") or name.endswith(".start.json"):
                self.on_drop(Path(parent, name), moved)
        elif parent == self._schedules:
            if name.endswith(".json") and not is_directory and self.on_schedule is not None:
                self.on_schedule(name[:-len(".json")])
        elif parent == self._workflows:
            if is_directory:
                self.on_workflow(name)
        elif name == "history.jsonl":
            top, _, workflow = parent.rpartition("/")
            if top == self._workflows and not workflow.startswith("."):
                self.on_workflow(workflow)


class WatchdogWarnings(logging.Handler):
    """watchdog's warnings (logger ``watchdog``) go to ``log``, and each asks for a rescan (``on_trouble``)."""

    def __init__(self, log: Callable[[str], None], on_trouble: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.log = log
        self.on_trouble = on_trouble

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.log(f"watch: {record.getMessage()}; rescanning")
            self.on_trouble()
        except Exception:  # noqa: BLE001 - a log line must never break watchdog's thread
            pass

    def attach(self) -> None:
        logging.getLogger("watchdog").addHandler(self)

    def detach(self) -> None:
        logging.getLogger("watchdog").removeHandler(self)


def observer_alive(observer: Observer) -> bool:
    """Are the observer thread and every emitter thread feeding it (one per watched folder) still running?"""
    return observer.is_alive() and all(emitter.is_alive() for emitter in list(observer.emitters))


def stop_observer(observer: Observer) -> None:
    """Stop an observer, whatever state it is in (a dead one may raise)."""
    try:
        observer.stop()
    except Exception:  # noqa: BLE001 - it is being replaced; nothing more to do with it
        pass


def start_observer(paths: Paths, hints: Hints) -> Observer:
    observer = Observer()
    observer.schedule(hints, str(paths.workflows_dir), recursive=True, event_filter=_WANTED)
    observer.schedule(hints, str(paths.timers_dir), recursive=False, event_filter=_WANTED)
    if paths.flows_dir.is_dir():
        observer.schedule(hints, str(paths.flows_dir), recursive=False, event_filter=_WANTED)
    if hints.on_schedule is not None and paths.schedules_dir.is_dir() and not paths.schedules_dir.is_symlink():
        observer.schedule(hints, str(paths.schedules_dir), recursive=False, event_filter=_WANTED)
    observer.daemon = True
    try:
        observer.start()
    except BaseException:  # some watches may have started (each an inotify instance): release them all
        stop_observer(observer)
        raise
    return observer
