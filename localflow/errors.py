"""The LocalFlow error family.

Every error a user can cause is a ``LocalFlowError``: it keeps its data as
attributes and its message says what happened and what to do next. The CLI
prints ``str(error)`` as one clear line (or a compiler-style block for flow
syntax errors) and exits with ``error.exit_code``; a traceback means a bug.

Two kinds never mix (as in Temporal's sdk-core): a ``NondeterminismError`` says
the history disagrees with the flow; a ``HistoryCorruptError`` says the history
itself is broken.
"""

from __future__ import annotations

from dataclasses import dataclass


class ExitCode:
    """The exit codes of `lf`, one meaning each (the table in `lf --help` and docs/cli.md)."""

    OK = 0
    WORKFLOW_FAILED = 1  # the workflow ended failed, cancelled or terminated (lf run, result, watch)
    USAGE = 2  # bad usage or input: an unknown option, bad JSON, a flow that does not parse, an ambiguous id
    STORAGE = 3  # storage or history corruption: a damaged history, a full disk, a symlink in var/
    NONDETERMINISM = 4  # a history disagrees with its flow
    NOT_FOUND = 5  # no such workflow, flow or schedule
    REFUSED = 6  # the request conflicts with what is: the workflow already ended, the id exists, a supervisor runs
    INTERRUPTED = 130  # Ctrl-C


EXIT_CODE_TABLE = (
    (ExitCode.OK, "success"),
    (ExitCode.WORKFLOW_FAILED, "the workflow failed, was cancelled or terminated (run, result, watch); "
                               "fsck: findings remain"),
    (ExitCode.USAGE, "bad usage or input (unknown option, bad JSON, a flow that does not parse, an ambiguous id)"),
    (ExitCode.STORAGE, "storage or history corruption (damaged history, full disk, symlink in var/)"),
    (ExitCode.NONDETERMINISM, "nondeterminism: a history disagrees with its flow"),
    (ExitCode.NOT_FOUND, "not found: no such workflow, flow or schedule"),
    (ExitCode.REFUSED, "refused: it conflicts with what is (already ended, id exists, a supervisor runs)"),
    (ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"),
)


class LocalFlowError(Exception):
    """Root of every error LocalFlow raises on purpose."""

    exit_code = ExitCode.REFUSED


class NotFoundError(LocalFlowError):
    """No such workflow, flow or schedule."""

    exit_code = ExitCode.NOT_FOUND


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a flow file, positioned like a compiler error."""

    file: str
    line: int
    col: int
    message: str
    source_line: str = ""

    def render(self) -> str:
        message = self.message.replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever a token held
        head = f"{self.file}:{self.line}:{self.col}: {message}"
        if not self.source_line:
            return head
        caret = " " * (max(self.col, 1) - 1) + "^"
        return f"{head}\n    {self.source_line.rstrip()}\n    {caret}"


class FlowSyntaxError(LocalFlowError):
    """A flow file that does not parse or check; holds every diagnostic found."""

    exit_code = 2

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]


class FlowNotFound(NotFoundError):
    def __init__(self, name: str, flows_dir: str, known: list[str] | None = None, where: str = "") -> None:
        self.name = name
        known = known or []
        shown = name if name.isprintable() else repr(name)[1:-1]  # no raw control character reaches a terminal or log
        close = _close_names(name, [k for k in known if " " not in k])
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        listed = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
        known_text = f" Known flows: {listed}." if known else ""
        where = where or ("no such file" if name.endswith(".flow") or "/" in name else f"no {flows_dir}/{shown}.flow")
        super().__init__(f"unknown flow '{shown}': {where}.{hint}{known_text}")
        self.known = known or []


def _close_names(name: str, known: list[str]) -> list[str]:
    """Names close to ``name``: the same but for case first, else those difflib finds close."""
    import difflib

    same = [k for k in known if k.lower() == name.lower()]
    if same:
        return same
    lowered = {k.lower(): k for k in known}
    return [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)]


class InputError(LocalFlowError):
    """Workflow input that is not valid JSON, names an unknown input, or misses one."""

    exit_code = 2


class ExpressionError(LocalFlowError):
    """An expression that cannot be evaluated with the values it was given."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        self.line = line
        self.col = col
        where = f"line {line}:{col}: " if line else ""
        super().__init__(f"{where}{message}")
        self.message = message


class InvalidWorkflowId(LocalFlowError):
    exit_code = 2

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(
            f"invalid workflow id {workflow_id!r}: use 1-128 characters from "
            "A-Z a-z 0-9 _ . -, starting with a letter or digit"
        )


class WorkflowNotFound(NotFoundError):
    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"no workflow '{workflow_id}' (see `lf list`)")


class WorkflowFinished(LocalFlowError):
    def __init__(self, workflow_id: str, status: str, action: str) -> None:
        self.workflow_id = workflow_id
        self.status = status
        super().__init__(f"workflow '{workflow_id}' is already {status}; cannot {action} it")


class WorkflowExists(LocalFlowError):
    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"a workflow with id '{workflow_id}' already exists; choose another --id")


class ConflictError(LocalFlowError):
    """An append that expected a different history tail (someone else wrote first)."""

    def __init__(self, path: str, expected_seq: int, actual_seq: int) -> None:
        self.path = path
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq
        super().__init__(
            f"{path}: expected to append seq {expected_seq} but the history ends at "
            f"{actual_seq}; another writer got there first, retry"
        )


class HistoryCorruptError(LocalFlowError):
    """A history line that is damaged and is not a torn tail: never repaired automatically."""

    exit_code = 3

    def __init__(self, path: str, line: int, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        super().__init__(
            f"{path}:{line}: history is corrupt: {reason}. Nothing was changed; "
            "restore the file from a backup or move the workflow directory aside"
        )


class NondeterminismError(LocalFlowError):
    """Replaying the history through the flow produced different decisions."""

    exit_code = 4

    def __init__(self, seq: int, expected: object, recorded: object, detail: str = "",
                 explain: tuple[str, ...] = ()) -> None:
        self.seq = seq
        self.expected = expected
        self.recorded = recorded
        self.detail = detail
        self.explain = tuple(explain)  # the flow line with a caret, then field-by-field differences
        extra = f" ({detail})" if detail else ""
        lines = [f"nondeterminism at seq {seq}{extra}: the flow decides {_shown(expected)} "
                 f"but the history recorded {_shown(recorded)}"]
        lines += [f"    {line}" for line in self.explain]
        super().__init__("\n".join(lines))


def _shown(decision: object) -> str:
    """A decision in a headline: its kind and step (the explain lines give every field)."""
    if decision is None:
        return "nothing"
    if not hasattr(decision, "__dataclass_fields__"):
        return repr(decision)
    step = getattr(decision, "step", None)
    return type(decision).__name__ + (f" of step {step!r}" if step else "")


class FoldError(LocalFlowError, ValueError):
    """An event that cannot follow the state it is applied to: the history is broken (or a bug)."""

    exit_code = 3


class StorageError(LocalFlowError):
    """The filesystem refused a write (disk full, fsync failure, permissions)."""

    exit_code = 3


class PayloadTooLarge(LocalFlowError):
    exit_code = ExitCode.USAGE  # input too large to record: bad input

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")


class SupervisorRunning(LocalFlowError):
    def __init__(self, lock_path: str, holder: str) -> None:
        self.lock_path = lock_path
        self.holder = holder
        super().__init__(f"another supervisor holds {lock_path} ({holder}); only one may run per var/")


class InvalidValue(LocalFlowError):
    """A value LocalFlow cannot store: NaN/Infinity, a lone surrogate, nesting past the limit."""

    exit_code = 2


class UnsafePath(LocalFlowError):
    """A path under var/ that is a symlink or not the kind of file expected: never followed."""

    exit_code = 3

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"refusing {path}: {reason}; LocalFlow never follows symlinks inside var/ "
                         "(move it aside)")


# --- the Python API (localflow/client.py) ---------------------------------------------


class AmbiguousWorkflowId(LocalFlowError):
    """A short id (a prefix, or a random tail) that matches several workflows."""

    exit_code = ExitCode.USAGE
    SHOWN = 10

    def __init__(self, ref: str, candidates: list[str]) -> None:
        self.ref = ref
        self.candidates = list(candidates)  # every match, newest first
        shown = ", ".join(self.candidates[:self.SHOWN])
        more = len(self.candidates) - self.SHOWN
        extra = f" and {more} more" if more > 0 else ""
        super().__init__(f"'{ref}' matches {len(self.candidates)} workflows: {shown}{extra}; "
                         "give more of the id")


class WorkflowFailed(LocalFlowError):
    """The workflow ended without a result: failed, cancelled, terminated or nondeterministic."""

    exit_code = ExitCode.WORKFLOW_FAILED

    def __init__(self, workflow_id: str, status: str, error: dict | None = None) -> None:
        self.workflow_id = workflow_id
        self.status = status
        self.error = dict(error or {})
        message = self.error.get("message")
        super().__init__(f"workflow '{workflow_id}' {status}" + (f": {message}" if message else ""))


class WorkflowStillRunning(LocalFlowError):
    """The request needs a workflow that has ended, and this one has not."""

    exit_code = ExitCode.REFUSED

    def __init__(self, workflow_id: str, status: str = "running", hint: str = "") -> None:
        self.workflow_id = workflow_id
        self.status = status
        hint = hint or "wait for it to end (`lf result --wait`)"
        super().__init__(f"workflow '{workflow_id}' is still {status}; {hint}")


class WaitTimedOut(WorkflowStillRunning, TimeoutError):
    """Waiting for a workflow's end took longer than the timeout given."""

    def __init__(self, workflow_id: str, timeout: float, status: str = "running") -> None:
        self.timeout = timeout
        super().__init__(workflow_id, status, f"gave up waiting for its end after {timeout:g}s "
                                              "(it carries on; wait again, or raise the timeout)")
