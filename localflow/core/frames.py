"""Frames: the running instances of a flow's blocks, and how they move (pure).

A frame is one running instance of a block (the flow body, an if-arm, a
parallel branch, a loop iteration, a catch block) with its program counter.
Its id names its place: ``root``, ``root/3:then0``, ``root/5:body[2]``;
``suffix`` (``[2]``) is appended to the keys of steps inside loops
(``pack[2]``). A statement that opens blocks marks its frame ``entered`` and
counts ``open_children``; when the last child ends (for a race, the first; for
``first K``, the K-th), the frame moves on. While and repeat loops hand control
back to ``decide`` after each iteration (it tests the condition again); a lock's
and a scope's frame note that their body ended (``closed``). Children left running
by ``first K keep rest`` are re-parented to ``BACKGROUND``: they run on, and the
workflow completes only after them. Only live frames are kept in the state.

These functions take and return a ``WorkflowState`` (only its ``frames`` and
``body_done`` change); ``state.py`` calls them from its event handlers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Union

from localflow.core.frozen import replace
from localflow import ir
from localflow.errors import FoldError

if TYPE_CHECKING:
    from localflow.core.state import WorkflowState

ROOT = "root"
BACKGROUND = "background"  # the parent of branches left running by `first K keep rest` (no such frame)


@dataclass(frozen=True)
class Frame:
    id: str
    block: tuple
    parent: Union[str, None] = None
    pc: int = 0
    suffix: str = ""
    bindings: Mapping[str, Any] = field(default_factory=dict)  # loop variables, `error` in catches
    entered: bool = False  # the current statement has opened its blocks
    open_children: int = 0
    items: tuple = ()  # a loop's recorded items
    next_item: int = 0  # a loop's next iteration to start (while, repeat, signal loops: iterations started)
    need: int = 0  # ``first K``: how many children must end for the join (0: all of them)
    done_children: int = 0  # children that ended (counted only when ``need`` is set)
    since: int = 0  # a scope's ScopeStarted seq: its handlers take signals recorded after it
    closed: bool = False  # a signal loop takes no more signals; a scope's or lock's body has ended

    @property
    def current(self) -> Any:
        return self.block[self.pc] if self.pc < len(self.block) else None


def frame_at(state: WorkflowState, frame_id: str, at: int) -> Frame:
    frame = state.frames.get(frame_id)
    if frame is None or frame.pc != at or frame.entered:
        raise FoldError(f"frame {frame_id!r} is not at statement {at}")
    return frame


def open_blocks(state: WorkflowState, frame: Frame,
                children: list[tuple[str, tuple, str, Mapping]]) -> WorkflowState:
    """Enter the frame's current statement, starting the given child blocks (label, block, suffix, bindings)."""
    frames = dict(state.frames)
    frames[frame.id] = replace(frame, entered=True, open_children=len(children))
    for label, block, suffix, bindings in children:
        child_id = f"{frame.id}/{frame.pc}:{label}"
        frames[child_id] = Frame(child_id, tuple(block), frame.id, 0, suffix, bindings)
    state = replace(state, frames=frames)
    for label, block, _, _ in children:
        child_id = f"{frame.id}/{frame.pc}:{label}"
        if not block and child_id in state.frames:  # an empty block ends at once (unless a join ended it)
            state = end_frame(state, child_id)
    return state


def iteration(frame: Frame, index: int) -> tuple[str, tuple, str, Mapping]:
    loop: ir.For = frame.current
    bindings = {**frame.bindings, loop.var: frame.items[index]}
    return f"body[{index}]", loop.body, f"{frame.suffix}[{index}]", bindings


def update_frame(state: WorkflowState, frame_id: str, **changes: Any) -> WorkflowState:
    frames = dict(state.frames)
    frames[frame_id] = replace(frames[frame_id], **changes)
    return replace(state, frames=frames)


def open_child(state: WorkflowState, frame: Frame, label: str, block: tuple, suffix: str,
               bindings: Mapping, **changes: Any) -> WorkflowState:
    """Start one more child block of the frame's (entered) current statement, beside those running."""
    child_id = f"{frame.id}/{frame.pc}:{label}"
    frames = dict(state.frames)
    frames[frame.id] = replace(frame, entered=True, open_children=frame.open_children + 1, **changes)
    frames[child_id] = Frame(child_id, tuple(block), frame.id, 0, suffix, bindings)
    state = replace(state, frames=frames)
    return end_frame(state, child_id) if not block else state


def advance(state: WorkflowState, frame_id: str) -> WorkflowState:
    """The frame's current statement is done: move to the next, or end the frame."""
    frame = state.frames[frame_id]
    if frame.pc + 1 < len(frame.block):
        return update_frame(state, frame_id, pc=frame.pc + 1, entered=False, open_children=0,
                            items=(), next_item=0, need=0, done_children=0, since=0, closed=False)
    return end_frame(state, frame_id)


def end_frame(state: WorkflowState, frame_id: str) -> WorkflowState:
    frame = state.frames[frame_id]
    frames = dict(state.frames)
    del frames[frame_id]
    state = replace(state, frames=frames)
    if frame.parent is None:
        return replace(state, body_done=True)
    parent = state.frames.get(frame.parent)
    if parent is None:
        return state
    stmt = parent.current
    if isinstance(stmt, ir.Parallel) and stmt.race:
        return advance(drop_descendants(state, f"{parent.id}/{parent.pc}:"), parent.id)
    remaining = parent.open_children - 1
    if isinstance(stmt, (ir.While, ir.Repeat)):  # decide tests the condition again
        return update_frame(state, parent.id, entered=False, open_children=0)
    if isinstance(stmt, ir.Lock):  # decide releases it
        return update_frame(state, parent.id, open_children=0, closed=True)
    if isinstance(stmt, (ir.SignalLoop, ir.Scope)):
        closed = parent.closed or frame_id == f"{parent.id}/{parent.pc}:body"  # a scope's body ended
        if closed and remaining <= 0:
            return advance(state, parent.id)
        return update_frame(state, parent.id, open_children=remaining, closed=closed)
    if parent.need:
        if parent.done_children + 1 >= parent.need:
            return _join_early(state, parent)
        state = update_frame(state, parent.id, done_children=parent.done_children + 1)
        parent = state.frames[parent.id]
    if isinstance(stmt, ir.For) and parent.next_item < len(parent.items):
        state = update_frame(state, parent.id, open_children=remaining)
        parent = state.frames[parent.id]
        state = _open_more(state, parent)
        return state
    if remaining <= 0:
        return advance(state, parent.id)
    return update_frame(state, parent.id, open_children=remaining)


def _open_more(state: WorkflowState, loop_frame: Frame) -> WorkflowState:
    """Start the loop's next iteration in place of one that ended."""
    index = loop_frame.next_item
    label, block, suffix, bindings = iteration(loop_frame, index)
    child_id = f"{loop_frame.id}/{loop_frame.pc}:{label}"
    frames = dict(state.frames)
    frames[loop_frame.id] = replace(loop_frame, open_children=loop_frame.open_children + 1, next_item=index + 1)
    frames[child_id] = Frame(child_id, tuple(block), loop_frame.id, 0, suffix, bindings)
    state = replace(state, frames=frames)
    return end_frame(state, child_id) if not block else state


def _join_early(state: WorkflowState, parent: Frame) -> WorkflowState:
    """``first K`` reached: the others are cancelled, or with ``keep rest`` left running in the background."""
    if not getattr(parent.current, "keep_rest", None):
        return advance(drop_descendants(state, f"{parent.id}/{parent.pc}:"), parent.id)
    return keep_rest(state, parent)


def keep_rest(state: WorkflowState, parent: Frame) -> WorkflowState:
    """The statement is done; the blocks of it still running go on in the background."""
    prefix = f"{parent.id}/{parent.pc}:"
    frames = {k: replace(f, parent=BACKGROUND) if f.parent == parent.id and k.startswith(prefix) else f
              for k, f in state.frames.items()}
    return advance(replace(state, frames=frames), parent.id)


def jump(state: WorkflowState, frame_id: str, kind: str) -> WorkflowState:
    """``break`` / ``continue`` in ``frame_id``: end the innermost loop around it, or its iteration.

    With no loop around it any more (a branch left running in the background by ``keep rest``),
    it ends that background branch.
    """
    child = state.frames[frame_id]
    while child.parent is not None:
        parent = state.frames.get(child.parent)
        if parent is None:
            break
        if isinstance(parent.current, ir.LOOP_KINDS) and child.id.startswith(f"{parent.id}/{parent.pc}:body"):
            if kind == "break":
                return advance(drop_descendants(state, f"{parent.id}/{parent.pc}:"), parent.id)
            return end_frame(drop_descendants(state, child.id + "/"), child.id)
        child = parent
    return end_frame(drop_descendants(state, child.id + "/"), child.id)


def drop_descendants(state: WorkflowState, prefix: str) -> WorkflowState:
    """Cancel the frames under a statement (a race's losers): their steps are no longer wanted.

    Branches that ``keep rest`` left running in the background (and what runs under them) are
    not under anything any more: only the workflow's end stops them.
    """
    background = [k + "/" for k, f in state.frames.items() if f.parent == BACKGROUND and k.startswith(prefix)]
    if not background:
        return replace(state, frames={k: f for k, f in state.frames.items() if not k.startswith(prefix)})
    return replace(state, frames={k: f for k, f in state.frames.items() if not k.startswith(prefix)
                                  or f.parent == BACKGROUND or any(k.startswith(b) for b in background)})


def statement_at(flow: ir.Flow, frame_id: str, at: int) -> Any:
    """The statement a frame id and index name (``root/3:then0`` + 1), or None if there is none."""
    block: tuple = tuple(flow.body)
    for part in frame_id.split("/")[1:]:
        index, _, label = part.partition(":")
        label = label.split("[", 1)[0]  # a loop iteration runs the loop's body
        try:
            block = tuple(dict(ir.child_blocks(block[int(index)])).get(label) or ())
        except (ValueError, IndexError):
            return None
    return block[at] if 0 <= at < len(block) else None
