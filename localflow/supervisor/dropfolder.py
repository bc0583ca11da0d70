"""The drop folder: flows/*.flow files and flows/*.start.json requests.

- A ``*.flow`` file is *registered* (var/registry/<Name>.json records its
  content hash). A flow that appears while the supervisor runs is registered
  and starts one workflow with its input defaults; if an input has no default,
  nothing starts and the log says which. Flows already present when the
  supervisor starts are registered without starting anything; a changed flow
  is re-registered (running workflows keep the definition they pinned).
  A file that does not parse is reported once per content, with file:line:col.
- A ``*.start.json`` request ``{"flow": ..., "input": {...}, "id": optional}``
  starts that flow once, then moves to var/requests/done/ (or rejected/ with a
  ``.error`` file beside it). Exactly once across a crash: the workflow id is
  derived from the request file itself (name, content, inode), so redoing a
  request whose workflow already exists only finishes the move.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

from localflow import dsl
from localflow.core.inputs import missing_required
from localflow.engine import Engine
from localflow.errors import FlowSyntaxError, LocalFlowError, WorkflowExists
from localflow.store.atomic import ensure_dir, fsync_dir, write_atomic

REQUEST_SUFFIX = ".start.json"
_SETTLE_S = 2.0  # a file this fresh that does not parse may still be being written


class DropFolder:
    def __init__(self, engine: Engine, log: Callable[[str], None], on_started: Callable[[str], None]) -> None:
        self.engine = engine
        self.paths = engine.paths
        self.log = log
        self.on_started = on_started
        self._reported: dict[str, str] = {}  # path -> digest of the content whose error was logged

    def handle(self, path: Path, start_new: bool = True) -> None:
        if path.is_symlink() or not path.is_file():
            return
        if path.name.endswith(REQUEST_SUFFIX):
            self._request(path)
        elif path.suffix == ".flow":
            self._flow(path, start_new)

    # --- flows ----------------------------------------------------------------

    def _flow(self, path: Path, start_new: bool) -> None:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        registry = self.paths.registry_dir / f"{path.stem}.json"
        known = _read_json(registry)
        if known and known.get("flow_hash") == digest:
            return
        try:
            flow = dsl.load_flow_file(path, self.engine.display(path))
        except FlowSyntaxError as exc:
            if self._reported.get(str(path)) != digest and not _fresh(path):
                self._reported[str(path)] = digest
                self.log(f"flow {self.engine.display(path)} does not parse; nothing started:\n{exc}")
            return
        ensure_dir(self.paths.registry_dir)
        write_atomic(registry, json.dumps({"flow": flow.name, "flow_hash": digest,
                                           "registered_at": self.engine.clock()}).encode())
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
        self._start(flow.name, {}, None, f"new flow {flow.name}")

    # --- requests ----------------------------------------------------------------

    def _request(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
            request = json.loads(raw.decode("utf-8"))
            if not isinstance(request, dict) or not isinstance(request.get("flow"), str):
                raise ValueError('a request is a JSON object like {"flow": "Name", "input": {...}}')
            given = request.get("input", {})
            if not isinstance(given, dict):
                raise ValueError('"input" must be a JSON object')
        except (ValueError, UnicodeDecodeError) as exc:
            if _fresh(path):
                return  # maybe still being written; the next event or rescan looks again
            self._finish(path, "rejected", f"{path.name}: not a valid start request: {exc}")
            return
        identity = f"{path.name}\0{raw.hex()}\0{os.stat(path).st_ino}"
        workflow_id = request.get("id") or f"{request['flow'][:80]}-req-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
        try:
            self._start(request["flow"], given, workflow_id, f"request {path.name}")
        except WorkflowExists:
            self.log(f"request {path.name}: workflow {workflow_id} already started; finishing the request")
        except LocalFlowError as exc:
            self._finish(path, "rejected", f"{path.name}: {exc}")
            return
        self._finish(path, "done", None)

    def _start(self, flow: str, given: dict, workflow_id: str | None, why: str) -> None:
        started = self.engine.start(flow, given, workflow_id)
        self.log(f"{why}: started workflow {started}")
        self.on_started(started)

    def _finish(self, path: Path, outcome: str, error: str | None) -> None:
        target_dir = self.paths.requests_dir / outcome
        ensure_dir(target_dir)
        target = target_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.name}"
        if error:
            write_atomic(target.with_name(target.name + ".error"), (error + "\n").encode())
            self.log(f"rejected {error}")
        os.replace(path, target)
        fsync_dir(target_dir)
        fsync_dir(path.parent)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fresh(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < _SETTLE_S
    except OSError:
        return False
