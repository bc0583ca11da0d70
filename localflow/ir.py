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

import functools
from dataclasses import dataclass, fields
from typing import Any, Union

from localflow.errors import FoldError

# JSON levels ``from_json`` follows: a parsed flow (blocks nest at most 32 deep, about four
# JSON levels each) needs far fewer; a deeper document is a damaged or hand-made history.
MAX_JSON_DEPTH = 200


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
    # Added later (omitted from the JSON when None): ``jitter`` shortens each wait by a
    # deterministic 0..jitter fraction of it (from workflow id, step and attempt);
    # ``no_retry_exit`` / ``no_retry_errors`` (``no retry on exit 2`` / ``no retry on error "T"``)
    # make a failure with that exit code or error type final at once.
    jitter: Union[float, None] = None
    no_retry_exit: Union[tuple, None] = None
    no_retry_errors: Union[tuple, None] = None


@dataclass(frozen=True)
class Input:
    """A flow input; ``default`` is None when the input is required."""

    name: str
    default: Union[Expr, None] = None
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Catch:
    """``catch [MATCH]:`` under a step: a block that runs instead of failing the workflow.

    ``match`` is ``any`` (bare ``catch:``), ``timeout`` (the step ran past its
    timeout, or a signal wait timed out), ``exit`` (``catch exit 2, 3:``: the
    command exited with one of ``values``), or ``error`` (``catch error
    "CardDeclined":``: the activity reported that error type). Inside the block
    the name ``error`` holds ``{"kind", "message", "exit_code", "type"}``.
    """

    match: str
    values: tuple = ()
    body: tuple = ()
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Call:
    """``call package.module.function(name=EXPR, ...)``: a Python function run by a worker.

    ``target`` is ``"package.module:function"`` (the module path is relative to the
    flows folder); ``kwargs`` are the keyword arguments, evaluated when it is scheduled.
    """

    target: str
    kwargs: tuple = ()  # ((name, Expr), ...)
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Activity:
    """``step NAME:`` running a command (argv list, never a shell), or calling a Python function.

    ``undo`` is the compensating command (argv list) run, in reverse order of
    completion, when the workflow later fails or is cancelled. A ``call`` step has
    ``call`` set and no ``argv``.
    """

    name: str
    argv: tuple[Expr, ...]
    timeout_ms: int
    retry: Retry = Retry()
    stdin: Union[Expr, None] = None
    undo: Union[tuple[Expr, ...], None] = None
    catches: tuple[Catch, ...] = ()
    line: int = 0
    col: int = 0
    call: Union[Call, None] = None  # omitted from the JSON when None (pinned flows of older versions)
    heartbeat_ms: Union[int, None] = None  # `heartbeat 30s`: no heartbeat for this long fails the attempt
    total_timeout_ms: Union[int, None] = None  # ``timeout D total T``: all attempts and waits, from the first
    concurrency: Union[int, None] = None  # at most this many attempts of this step (all workflows) at once
    env: Union[Expr, None] = None  # ``env {...}``: variables added to the step's environment (docs/activities-env.md)
    cwd: Union[Expr, None] = None  # ``cwd "dir"``: a run step's working folder, relative to the home


@dataclass(frozen=True)
class WaitSignal:
    """``step NAME:`` + ``wait signal SIGNAL [timeout D]``: the signal's payload is the result."""

    name: str
    signal: str
    timeout_ms: Union[int, None] = None
    catches: tuple[Catch, ...] = ()
    line: int = 0
    col: int = 0
    # Set by parsers since the Workflow Patterns release: the step's value also says how the wait
    # ended (``ended``, ``timed_out``) and stays readable after a caught timeout. Omitted when None,
    # so flows pinned before keep reading exactly what they read then.
    tells_ending: Union[bool, None] = None


@dataclass(frozen=True)
class ChildFlow:
    """``step NAME:`` + ``flow FLOW`` [+ ``input EXPR``]: run another flow as a child workflow."""

    name: str
    flow: str
    input: Union[Expr, None] = None
    catches: tuple[Catch, ...] = ()
    line: int = 0
    col: int = 0
    # ``flow NAME detached``: the step completes as soon as the child is recorded as started (its
    # result is ``{"workflow_id": ...}``); the child runs on its own, and outlives the parent.
    detached: Union[bool, None] = None


@dataclass(frozen=True)
class Sleep:
    """``sleep DURATION``; ``id`` is ``sleep-N``, N counting sleeps in document order.

    ``sleep until EXPR`` has ``until`` (an ISO-8601 timestamp, evaluated when it starts)
    and ``duration_ms`` 0.
    """

    id: str
    duration_ms: int
    line: int = 0
    col: int = 0
    until: Union[Expr, None] = None


@dataclass(frozen=True)
class Fail:
    """``fail EXPR``: end the workflow as failed with that message (compensating first)."""

    message: Expr
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Return:
    """``return EXPR``: end the workflow as completed with that result."""

    value: Expr
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Set:
    """``set NAME = EXPR``: a workflow variable, readable by later expressions."""

    name: str
    value: Expr
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class IfBranch:
    """One ``if COND:`` or ``elif COND:`` arm."""

    condition: Expr
    body: tuple = ()
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class If:
    """``if`` / ``elif`` arms in order, and the ``else:`` block (None when absent)."""

    id: str
    branches: tuple[IfBranch, ...]
    orelse: Union[tuple, None] = None
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Parallel:
    """``parallel:`` (all branches run, join when all end) or ``race:`` (first to end wins).

    Each ``branch:`` block is one tuple of statements in ``branches``. ``parallel first K:``
    joins when K branches have ended (``first``), cancelling the others, or with ``keep rest``
    (``keep_rest``) leaving them to finish in the background. ``branch if COND:`` gives a
    branch a condition (``conditions``: one Expr or None per branch), evaluated when the
    parallel starts: only the branches whose condition holds run (an OR-split).
    """

    id: str
    branches: tuple[tuple, ...]
    race: bool = False
    line: int = 0
    col: int = 0
    first: Union[int, None] = None
    keep_rest: Union[bool, None] = None
    conditions: Union[tuple, None] = None


@dataclass(frozen=True)
class For:
    """``for VAR in EXPR [parallel N] [first K [keep rest]]:`` over a list; ``concurrency`` 1 means one
    at a time; ``first``/``keep_rest`` as for ``Parallel``."""

    id: str
    var: str
    items: Expr
    body: tuple = ()
    concurrency: int = 1
    line: int = 0
    col: int = 0
    first: Union[int, None] = None
    keep_rest: Union[bool, None] = None


DEFAULT_MAX_ITERATIONS = 10_000  # a while/repeat/signal loop without ``max N``
MAX_ITERATIONS = 1_000_000


@dataclass(frozen=True)
class While:
    """``while COND [max N]:``: the condition is tried before each iteration (each result recorded);
    still true after ``max_iterations`` iterations, the workflow fails (kind ``loop``)."""

    id: str  # while-N
    condition: Expr
    body: tuple = ()
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Repeat:
    """``repeat [max N]:`` + block + ``until COND``: the body runs, then the condition is tried (it
    reads the iteration's steps); the loop ends when it holds."""

    id: str  # repeat-N
    body: tuple
    until: Expr
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Break:
    """``break``: ends the innermost loop around it (cancelling whatever of it still runs)."""

    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Continue:
    """``continue``: ends this iteration of the innermost loop around it."""

    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class SignalLoop:
    """``for VAR in signal NAME [until signal CLOSE | until COND] [max N] [parallel N] [keep rest]:``

    One iteration per signal NAME, taken in the order they arrived (buffered ones too), with
    ``VAR`` bound to its data, at most ``concurrency`` at once. The loop stops taking signals
    when a CLOSE signal is taken, when COND holds, or after ``max_iterations`` iterations;
    it ends when its running iterations have ended, or at once with ``keep rest`` (they run
    on in the background, as for ``first K keep rest``).
    """

    id: str  # for-N (counted with the for loops)
    var: str
    signal: str
    body: tuple = ()
    concurrency: int = 1
    close_signal: Union[str, None] = None
    until: Union[Expr, None] = None
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    line: int = 0
    col: int = 0
    keep_rest: Union[bool, None] = None  # `keep rest`: once closed, running iterations go on in the background


@dataclass(frozen=True)
class Lock:
    """``lock EXPR [global]:``: a critical section. The body runs while this workflow (``scope``
    ``workflow``) or every workflow of the home (``global``: scope ``home``) holds the lock named
    EXPR; requests are served first come, first served; leaving the body in any way releases it."""

    id: str  # lock-N
    name: Expr
    body: tuple = ()
    scope: str = "workflow"  # or "home"
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Handler:
    """``on signal NAME [as VAR]:`` at the top of a block: runs its body for each signal NAME that
    arrives while the rest of the block runs, with ``VAR`` bound to the signal's data."""

    signal: str
    var: Union[str, None] = None
    body: tuple = ()
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Scope:
    """A block that starts with ``on signal`` handlers: ``body`` is the rest of the block.

    The handlers take signals received after the scope started (never earlier ones) until its
    body ends; the scope ends when its body and every handler run it started have ended.
    """

    id: str  # scope-N
    handlers: tuple[Handler, ...]
    body: tuple = ()
    line: int = 0
    col: int = 0


Step = Union[Activity, WaitSignal, ChildFlow]
Stmt = Union[Activity, WaitSignal, ChildFlow, Sleep, Fail, Return, Set, If, Parallel, For, While, Repeat, Break,
             Continue, SignalLoop, Lock, Scope]
LOOP_KINDS = (For, While, Repeat, SignalLoop)  # what break and continue leave
STEP_KINDS = (Activity, WaitSignal, ChildFlow)


@dataclass(frozen=True)
class Flow:
    """A whole flow: its name, inputs, optional workflow timeout, and its body."""

    name: str
    inputs: tuple[Input, ...]
    body: tuple
    file: str = ""
    timeout_ms: Union[int, None] = None
    concurrency: Union[int, None] = None  # at most this many activities of all its workflows at once

    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in walk(self.body) if isinstance(s, STEP_KINDS))


def child_blocks(stmt: object) -> list[tuple[str, tuple]]:
    """The blocks directly inside a statement, each with its stable label.

    Labels: ``then0``, ``then1``... and ``else`` for if; ``b0``, ``b1``... for
    parallel/race branches; ``body`` for a loop or a lock; ``catch0``... for a step's
    catches; ``body`` and ``on0``, ``on1``... (its handlers) for a scope.
    """
    if isinstance(stmt, If):
        blocks = [(f"then{i}", b.body) for i, b in enumerate(stmt.branches)]
        return blocks + ([("else", stmt.orelse)] if stmt.orelse is not None else [])
    if isinstance(stmt, Parallel):
        return [(f"b{i}", branch) for i, branch in enumerate(stmt.branches)]
    if isinstance(stmt, (For, While, Repeat, SignalLoop, Lock)):
        return [("body", stmt.body)]
    if isinstance(stmt, Scope):
        return [("body", stmt.body)] + [(f"on{i}", h.body) for i, h in enumerate(stmt.handlers)]
    if isinstance(stmt, STEP_KINDS):
        return [(f"catch{i}", c.body) for i, c in enumerate(stmt.catches)]
    return []


def walk(block: tuple):
    """Every statement of a block and of the blocks nested in it, in document order."""
    for stmt in block:
        yield stmt
        for _, inner in child_blocks(stmt):
            yield from walk(inner)


def without_tells_ending(flow: Flow) -> Flow:
    """The same flow with its wait steps as parsers made them before ``WaitSignal.tells_ending``."""
    def strip(data: Any) -> Any:
        if isinstance(data, list):
            return [strip(item) for item in data]
        if isinstance(data, dict):
            return {k: strip(v) for k, v in data.items() if not (k == "tells_ending" and data.get("kind") == "WaitSignal")}
        return data
    return from_json(strip(to_json(flow)))


# --- JSON round-trip -------------------------------------------------------

_NODE_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (Expr, Retry, Input, Catch, Call, Activity, WaitSignal, ChildFlow, Sleep, Fail, Return, Set,
                IfBranch, If, Parallel, For, While, Repeat, Break, Continue, SignalLoop, Lock, Handler, Scope,
                Flow)
}


_OMITTED_WHEN_NONE = frozenset({"call", "heartbeat_ms", "concurrency", "jitter", "no_retry_exit", "no_retry_errors",
                                 "total_timeout_ms", "until", "env", "cwd", "tells_ending", "detached", "first",
                                 "keep_rest", "conditions"})  # fields added later: a flow without them pins the same JSON as before


def to_json(node: Any) -> Any:
    """Turn an IR node (or tuple of nodes) into plain JSON values, tagged by ``kind``."""
    if isinstance(node, tuple):
        return [to_json(item) for item in node]
    if type(node).__name__ in _NODE_TYPES and type(node) is _NODE_TYPES[type(node).__name__]:
        out: dict[str, Any] = {"kind": type(node).__name__}
        for f in fields(node):
            value = getattr(node, f.name)
            if value is None and f.name in _OMITTED_WHEN_NONE:
                continue
            out[f.name] = to_json(value)
        return out
    return node


_SCALARS = {"int": (int,), "str": (str,), "bool": (bool,), "float": (int, float), "tuple": (tuple,)}


@functools.cache
def _field_rules(cls: type) -> dict:
    """Field -> (types its value may have after ``from_json``, element types of a ``tuple[X, ...]`` or
    None), from the dataclass's declared field types; a field of a type not listed is not checked."""
    rules = {}
    for f in fields(cls):
        declared = str(f.type)
        optional = declared.startswith("Union[") and declared.endswith(", None]")
        declared = declared[len("Union["):-len(", None]")] if optional else declared
        element = None
        if declared.startswith("tuple[") and declared.endswith(", ...]"):
            element, declared = declared[len("tuple["):-len(", ...]")], "tuple"
        types = _SCALARS.get(declared) or ((_NODE_TYPES[declared],) if declared in _NODE_TYPES else None)
        elements = None if element is None else (_SCALARS.get(element) or (
            (_NODE_TYPES[element],) if element in _NODE_TYPES else None))
        if types is not None:
            rules[f.name] = (types + ((type(None),) if optional else ()), elements)
    return rules


def _fits(value: Any, types: tuple, elements: Union[tuple, None]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    if not isinstance(value, types):
        return False
    return elements is None or not isinstance(value, tuple) or all(
        isinstance(item, elements) and not (isinstance(item, bool) and bool not in elements) for item in value)


def from_json(data: Any, depth: int = 0) -> Any:
    """Inverse of ``to_json``: lists become tuples, tagged dicts become nodes.

    JSON that is no flow (an unknown kind, wrong fields, nesting past ``MAX_JSON_DEPTH``)
    raises FoldError, a ValueError: a pinned flow like that means the history is broken.
    """
    if depth > MAX_JSON_DEPTH:
        raise FoldError(f"the pinned flow is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(data, list):
        return tuple([from_json(item, depth + 1) for item in data])
    if isinstance(data, dict) and "kind" in data:
        kind = data["kind"]
        cls = _NODE_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise FoldError(f"unknown IR node kind {kind!r}")
        values = {k: from_json(v, depth + 1) for k, v in data.items() if k != "kind"}
        rules = _field_rules(cls)
        for name, value in values.items():  # a hand-edited pinned flow: a duration that is text, a name a number
            if name in rules and not _fits(value, *rules[name]):
                raise FoldError(f"malformed IR node {kind}: its {name} is {value!r:.80}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise FoldError(f"malformed IR node {kind}: {exc}") from None
    return data


_KEYWORDS = {"If": "if", "For": "for", "While": "while", "Repeat": "repeat", "SignalLoop": "signal loop",
             "Lock": "lock", "Scope": "block", "Sleep": "sleep", "Set": "set", "Return": "return", "Fail": "fail",
             "Break": "break", "Continue": "continue"}


def shown_name(stmt: Any) -> str:
    """A statement as its author knows it, for people: a step by its name, any other statement by
    its keyword and line (``sleep at line 7``), never by the id (``sleep-1``) histories key it by."""
    name = getattr(stmt, "name", None)
    if isinstance(name, str) and name and not isinstance(stmt, Set):
        return name
    kind = type(stmt).__name__
    keyword = ("race" if getattr(stmt, "race", False) else "parallel") if kind == "Parallel" else \
        _KEYWORDS.get(kind, kind.lower())
    line = getattr(stmt, "line", 0)
    return f"{keyword} at line {line}" if line else keyword


def statement_name(flow: Union[Flow, None], key: str) -> str:
    """A statement keyed by its id as histories key it (``sleep-1``, ``sleep-1[2]`` in a loop) in
    the flow's words (``sleep at line 9[2]``); a step's name is its key, and comes back as it is."""
    base, bracket, rest = key.partition("[")
    for stmt in walk(flow.body) if flow is not None else ():
        if getattr(stmt, "id", None) == base and not isinstance(getattr(stmt, "name", None), str):
            return shown_name(stmt) + bracket + rest
    return key
