"""Every path LocalFlow touches, from one pure helper (litestream's rule).

``Paths(home)`` knows the layout under a LocalFlow home directory:

    flows/<Name>.flow                       flow definitions; the drop folder
    var/workflows/<id>/history.jsonl        the truth, one event per line
    var/workflows/<id>/lock                 the workflow's append lock
    var/workflows/<id>/logs/<step>.<n>.out  stdout/stderr of each activity attempt
    var/timers/<fire_at_ms:013d>-<id>-<n>   timer markers: sorted names are the schedule
    var/requests/{done,rejected}/           processed *.start.json requests
    var/registry/<Name>.json                flows the supervisor has registered
    var/schedules/<name>.json               schedules: definition and state (localflow/schedules.py)
    var/supervisor.lock, supervisor.json    the one-supervisor lock and who holds it

It computes paths and validates workflow ids; it never touches the disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from localflow.errors import InvalidWorkflowId

WORKFLOW_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TIMER_RE = re.compile(r"^(\d{13})-([A-Za-z0-9][A-Za-z0-9_.-]{0,127})-(\d+)$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.\[\]-]")


def validate_workflow_id(workflow_id: str) -> str:
    """Return the id if it is safe to use as a directory name, else raise InvalidWorkflowId."""
    if not isinstance(workflow_id, str) or not WORKFLOW_ID_RE.fullmatch(workflow_id):
        raise InvalidWorkflowId(str(workflow_id))
    if workflow_id in (".", "..") or ".." in workflow_id:
        raise InvalidWorkflowId(workflow_id)
    return workflow_id


@dataclass(frozen=True)
class TimerMarker:
    fire_at_ms: int
    workflow_id: str
    timer: int

    @property
    def name(self) -> str:
        return f"{self.fire_at_ms:013d}-{self.workflow_id}-{self.timer}"


def parse_timer_marker(name: str) -> TimerMarker | None:
    """The marker a file name stands for, or None for anything else (tmp files, strays)."""
    match = _TIMER_RE.fullmatch(name)
    if match is None:
        return None
    return TimerMarker(int(match.group(1)), match.group(2), int(match.group(3)))


@dataclass(frozen=True)
class Paths:
    home: Path

    @classmethod
    def at(cls, home: str | Path) -> "Paths":
        return cls(Path(home).absolute())

    # Cached: these are asked for on every event and every transaction (frozen dataclass,
    # so the cache is written straight into the instance dict, as cached_property does).
    @cached_property
    def flows_dir(self) -> Path:
        return self.home / "flows"

    @cached_property
    def var_dir(self) -> Path:
        return self.home / "var"

    @cached_property
    def workflows_dir(self) -> Path:
        return self.var_dir / "workflows"

    @cached_property
    def timers_dir(self) -> Path:
        return self.var_dir / "timers"

    @cached_property
    def requests_dir(self) -> Path:
        return self.var_dir / "requests"

    @cached_property
    def registry_dir(self) -> Path:
        return self.var_dir / "registry"

    @cached_property
    def schedules_dir(self) -> Path:
        return self.var_dir / "schedules"

    @cached_property
    def supervisor_lock(self) -> Path:
        return self.var_dir / "supervisor.lock"

    @cached_property
    def supervisor_info(self) -> Path:
        return self.var_dir / "supervisor.json"

    def flow_file(self, name: str) -> Path:
        return self.flows_dir / f"{name}.flow"

    def workflow_dir(self, workflow_id: str) -> Path:
        return self.workflows_dir / validate_workflow_id(workflow_id)

    def history(self, workflow_id: str) -> Path:
        return self.workflow_dir(workflow_id) / "history.jsonl"

    def lock(self, workflow_id: str) -> Path:
        return self.workflow_dir(workflow_id) / "lock"

    def logs_dir(self, workflow_id: str) -> Path:
        return self.workflow_dir(workflow_id) / "logs"

    def attempt_log(self, workflow_id: str, step: str, attempt: int, stream: str) -> Path:
        safe_step = _UNSAFE_CHARS.sub("_", step)
        return self.logs_dir(workflow_id) / f"{safe_step}.{attempt}.{stream}"

    def timer_marker(self, marker: TimerMarker) -> Path:
        return self.timers_dir / marker.name
