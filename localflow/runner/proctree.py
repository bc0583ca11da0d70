"""Find and kill every process of an activity attempt, whatever became of its leader.

This module owns the rule that says which processes belong to an attempt. Each
attempt's processes are marked twice when its leader is spawned:

- the environment variable ``LF_ATTEMPT_TAG=<tag>`` (``attempt_tag``), computed
  from the home, workflow id, step and attempt number alone, so it is known from
  the history even when the executor crashed before it recorded the pid;
  children inherit it unless they scrub their environment;
- the session: the leader is spawned with ``start_new_session=True``, so its
  session id is its pid; descendants keep it unless they call ``setsid``.

A process belongs to the attempt if ``/proc/PID/environ`` holds exactly the tag,
or if its session id is the leader's pid and it started no earlier than the
leader (whose recorded start time proves the session is not a recycled one).
Signals go through a pidfd opened before the start time is checked again, so a
pid recycled between the scan and the signal is never hit.

What cannot be caught:

- a process that both scrubs its environment (``env -i``) and leaves the
  session (``setsid``, or a daemon's double fork); nor one whose environ is
  unreadable (a setuid program, ``PR_SET_DUMPABLE`` 0) and that left the session;
- a session whose start time was not recorded: only tagged processes are found;
- a recycled session whose new leader has already exited (it needs the whole
  old session to be gone and its pid to come round again);
- systems without ``/proc`` (not Linux): nothing is found here; the runner still
  signals the leader's process group, which is all that can be done there.
"""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import time
from typing import Optional, Union

TAG_VAR = "LF_ATTEMPT_TAG"
KILL_ROUNDS = 20  # a fork can race a scan: scan and kill again until nothing is left
_ROUND_PAUSE_S = 0.02
_PROC = "/proc"

StartTime = Union[str, int, None]


def attempt_tag(home: Union[str, os.PathLike], workflow_id: str, step: str, attempt: int) -> str:
    """``<home-hash8>:<workflow id>:<step>:<attempt>``: the same for every process of one attempt.

    The hash is of the home's real path, so two homes never share a tag. Workflow ids
    hold no ``:`` and the attempt number is last, so the tag is unambiguous.
    """
    return f"{_home_hash(os.fspath(home))}:{workflow_id}:{step}:{attempt}"


@functools.lru_cache(maxsize=64)
def _home_hash(home: str) -> str:
    real = os.path.realpath(home).encode("utf-8", "surrogateescape")
    return hashlib.sha256(real).hexdigest()[:8]


def _stat_fields(pid: int) -> Optional[list[str]]:
    """Fields 3 onwards of /proc/PID/stat (index 0 is the state), or None if it is gone."""
    try:  # os-level read: this runs for every process on every scan
        fd = os.open(f"{_PROC}/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(b")") + 2:].decode("ascii", "replace").split()
    return fields if len(fields) > 19 else None


def process_start_time(pid: int) -> Optional[str]:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), to tell it from a recycled pid."""
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def _has_tag(pid: int, entry: bytes) -> bool:
    try:
        with open(f"{_PROC}/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:  # gone, or not ours to read
        return False
    return entry in environ.split(b"\0")


def _session_floor(sid: Optional[int], not_before: StartTime) -> Optional[int]:
    """The start time a member of session ``sid`` must have, or None if the session cannot be trusted.

    If the pid ``sid`` is alive as another process (another start time), the session is a recycled one.
    """
    if sid is None or not_before is None:
        return None
    try:
        floor = int(not_before)
    except ValueError:
        return None
    current = process_start_time(sid)
    return None if current is not None and int(current) != floor else floor


def _scan(tag: str, sid: Optional[int], not_before: StartTime) -> list[tuple[int, str]]:
    """(pid, start time) of every live process of the attempt."""
    entry = f"{TAG_VAR}={tag}".encode("utf-8", "surrogateescape")
    floor = _session_floor(sid, not_before)
    # Nothing of the attempt can have started before its leader: older processes are skipped
    # without reading their environment (the common case, and most of a scan's cost).
    earliest = _as_int(not_before)
    try:
        names = os.listdir(_PROC)
    except OSError:
        return []
    found = []
    me = os.getpid()
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X", "x"):  # gone, or dead and waiting to be reaped
            continue
        if earliest is not None and int(fields[19]) < earliest:
            continue
        in_session = floor is not None and int(fields[3]) == sid and int(fields[19]) >= floor
        if in_session or _has_tag(pid, entry):
            found.append((pid, fields[19]))
    return found


def _as_int(value: StartTime) -> Optional[int]:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def find_attempt_processes(tag: str, sid: Optional[int] = None, not_before: StartTime = None) -> list[int]:
    """Every live process of the attempt: tagged ``tag``, or in session ``sid`` and started at or after
    ``not_before`` (the leader's recorded start time; without it the session is not used)."""
    return sorted(pid for pid, _ in _scan(tag, sid, not_before))


def _signal(pid: int, start: str, sig: int) -> bool:
    """Signal ``pid`` only if it is still the process the scan saw (same start time)."""
    try:
        fd: Optional[int] = os.pidfd_open(pid)  # type: ignore[attr-defined]
    except (AttributeError, OSError):  # no pidfd here (old kernel or Python, not Linux), or gone
        fd = None
    try:
        if process_start_time(pid) != start:
            return False
        if fd is None:
            os.kill(pid, sig)
        else:
            signal.pidfd_send_signal(fd, sig)  # type: ignore[attr-defined]
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if fd is not None:
            os.close(fd)


def terminate_attempt(tag: str, sid: Optional[int] = None, not_before: StartTime = None) -> list[int]:
    """SIGTERM every process of the attempt (once: the grace period is the caller's); the pids signalled."""
    return sorted(pid for pid, start in _scan(tag, sid, not_before) if _signal(pid, start, signal.SIGTERM))


def kill_attempt(tag: str, sid: Optional[int] = None, not_before: StartTime = None) -> list[int]:
    """SIGKILL every process of the attempt, scanning again until none is left; the pids killed."""
    killed: set[int] = set()
    for _ in range(KILL_ROUNDS):
        found = _scan(tag, sid, not_before)
        if not found:
            break
        killed.update(pid for pid, start in found if _signal(pid, start, signal.SIGKILL))
        time.sleep(_ROUND_PAUSE_S)  # let the killed become zombies before looking again
    return sorted(killed)
