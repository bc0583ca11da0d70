"""The Flow model: what a parsed ``.flow`` file means, as frozen dataclasses.

The parser (``localflow.dsl``) builds it, the pure core folds and decides over
it, and ``WorkflowStarted`` pins it into a history as JSON (``to_json`` /
``from_json`` round-trip exactly), so a running workflow never sees later edits
to its flow file.

Statements carry a ``line``/``col`` so errors and nondeterminism reports can
point at the source. Expressions are kept as their source text (``Expr``) and
evaluated by ``localflow.core.expr``.

This module imports nothing from ``dsl`` or ``core``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Union


@dataclass(frozen=True)
class Expr:
    """An expression as written in the flow, with where it starts (1-based)."""

    source: str
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Retry:
    """Retry policy for an activity step.

    ``max_attempts`` counts every attempt, the first included: ``retry 3`` in the
    DSL means three retries after the first attempt, so ``max_attempts == 4``.
    The delay before attempt n+1 is ``initial_ms * backoff ** (n - 1)``, capped
    at ``max_interval_ms`` when set.
    """

    max_attempts: int = 1
    initial_ms: int = 1000
    backoff: float = 2.0
    max_interval_ms: Union[int, None] = None


@dataclass(frozen=True)
class Input:
    """A flow input; ``default`` is None when the input is required."""

    name: str
    default: Union[Expr, None] = None
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Activity:
    """``step NAME:`` running a command (argv list, never a shell)."""

    name: str
    argv: tuple[Expr, ...]
    timeout_ms: int
    retry: Retry = Retry()
    stdin: Union[Expr, None] = None
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Sleep:
    """``sleep DURATION``; ``id`` is ``sleep-N``, N counting sleeps in document order."""

    id: str
    duration_ms: int
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Fail:
    """``fail EXPR``: end the workflow as failed with that message."""

    message: Expr
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Return:
    """``return EXPR``: end the workflow as completed with that result."""

    value: Expr
    line: int = 0
    col: int = 0


Stmt = Union[Activity, Sleep, Fail, Return]


@dataclass(frozen=True)
class Flow:
    """A whole flow: its name, inputs, and the statements of its body in order."""

    name: str
    inputs: tuple[Input, ...]
    body: tuple[Stmt, ...]
    file: str = ""

    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.body if isinstance(s, Activity))


# --- JSON round-trip -------------------------------------------------------

_NODE_TYPES: dict[str, type] = {
    cls.__name__: cls for cls in (Expr, Retry, Input, Activity, Sleep, Fail, Return, Flow)
}


def to_json(node: Any) -> Any:
    """Turn an IR node (or tuple of nodes) into plain JSON values, tagged by ``kind``."""
    if isinstance(node, tuple):
        return [to_json(item) for item in node]
    if type(node).__name__ in _NODE_TYPES and type(node) is _NODE_TYPES[type(node).__name__]:
        out: dict[str, Any] = {"kind": type(node).__name__}
        for f in fields(node):
            out[f.name] = to_json(getattr(node, f.name))
        return out
    return node


def from_json(data: Any) -> Any:
    """Inverse of ``to_json``: lists become tuples, tagged dicts become nodes."""
    if isinstance(data, list):
        return tuple(from_json(item) for item in data)
    if isinstance(data, dict) and "kind" in data:
        cls = _NODE_TYPES.get(data["kind"])
        if cls is None:
            raise ValueError(f"unknown IR node kind {data['kind']!r}")
        return cls(**{k: from_json(v) for k, v in data.items() if k != "kind"})
    return data
