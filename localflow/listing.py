"""Listing rows (`lf list`): one summary per workflow, fast, and always what folding would give.

A row comes from the workflow's derived summary file when that provably matches
the history (store/summaries.py); otherwise the history is folded and the summary
rewritten. One workflow that cannot be read becomes a problem line, never a
failure of the whole listing.
"""

from __future__ import annotations

from typing import Any, Union

from localflow.core.state import WorkflowState
from localflow.core.timefmt import to_iso
from localflow.engine import Engine
from localflow.errors import LocalFlowError
from localflow.store import summaries


def row_of(state: WorkflowState) -> dict[str, Any]:
    """One row of `lf list --json` (also the head of `lf inspect --json`)."""
    error = state.error or {}
    return {
        "id": state.workflow_id,
        "flow": state.flow.name,
        "status": "held" if state.held and not state.terminal else state.status,
        "current_steps": state.current_steps,
        "started": to_iso(state.started_at),
        "updated": to_iso(state.updated_at),
        "ended": None if state.ended_at is None else to_iso(state.ended_at),
        "error": error.get("message") if state.terminal and state.status != "completed" else (
            f"nondeterministic at seq {state.divergence['at']}" if state.divergence else None),
        "parent": (state.parent or {}).get("workflow_id"),
    }


def row(engine: Engine, workflow_id: str, cached: Union[dict, None] = None) -> dict[str, Any]:
    """The listing row of one workflow (``cached``: its summary's row, if one matched); LocalFlowError
    if its history cannot be read."""
    if cached is not None:
        return cached
    loaded = engine.load(workflow_id)
    fresh = row_of(loaded.state)
    summaries.write(engine.paths.var_dir, engine.paths.history(workflow_id), loaded.size, fresh)
    return fresh


def note_settled(engine: Engine, workflow_id: str, state: WorkflowState) -> None:
    """The executor's note that a workflow is over: its summary, marked settled when nothing of it
    (an attempt, a child) can still need doing, so the next start-up need not read its history."""
    cursor = engine.transacted(workflow_id)
    if cursor is None or not state.terminal:
        return
    done = not state.pending_attempts() and not state.pending_children()
    summaries.write(engine.paths.var_dir, engine.paths.history(workflow_id), cursor.size, row_of(state), done)


def rows(engine: Engine) -> tuple[list[dict[str, Any]], list[str]]:
    """Every workflow's row, newest first, and a line for each workflow that could not be read."""
    ids = engine.workflow_ids()
    cached = summaries.read_many(engine.paths.var_dir, engine.paths.workflows_dir, ids)
    found, problems = [], []
    for workflow_id in ids:
        try:
            found.append(row(engine, workflow_id, cached[workflow_id]))
        except LocalFlowError as exc:
            problems.append(f"{workflow_id}: {exc}")
    found.sort(key=lambda r: (r["started"], r["id"]), reverse=True)
    return found, problems
