"""The HistoryStore contract, run against the real store and its in-memory twin.

``StoreContract`` holds what every store must do (STYLE.md convention 7, as in
eventsourcing's recorder tests); ``TestFileStore`` runs it over real files under
a tmp home and adds what only files can suffer (torn tails, rewritten or
replaced files, same-size edits); ``TestMemoryStore`` runs it over
``MemoryStore`` and adds its damage hook.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localflow.core.jsonvalue import MAX_EVENT_BYTES
from localflow.engine import Engine
from localflow.errors import (
    ConflictError,
    HistoryCorruptError,
    InvalidValue,
    InvalidWorkflowId,
    PayloadTooLarge,
    WorkflowExists,
    WorkflowNotFound,
)
from localflow.store.base import HistoryStore
from localflow.store.codec import encode as codec_line
from localflow.store.files import FileStore
from localflow.store.memory import MemoryStore
from localflow.store.paths import Paths

# What the engine records for `flow Quick / return 7`, whichever store is underneath.
ENGINE_EVENT_TYPES = ["WorkflowStarted", "WorkflowCompleted"]
INVALID_IDS = ["", ".hidden", "-dash", "a/b", "../escape", "a..b", "x" * 129, "sp ace"]


def rec(seq: int, type_: str = "TimerFired", **extra) -> dict:
    return {"seq": seq, "ts": 1_000 + seq, "type": type_, "timer": seq, **extra}


def seqs(records: list[dict]) -> list[int]:
    return [r["seq"] for r in records]


class StoreContract:
    """Behaviour every HistoryStore must have; subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> HistoryStore:
        raise NotImplementedError

    def append(self, store: HistoryStore, workflow_id: str, *records: dict):
        """Read, then append under the lock, as the engine does; returns the new cursor."""
        with store.lock(workflow_id):
            return store.append(workflow_id, store.read(workflow_id), list(records))

    # --- create, read, ids ------------------------------------------------------------

    def test_create_then_read_gives_exactly_the_first_record(self, store):
        store.create("w1", rec(1, "WorkflowStarted"))

        chunk = store.read("w1")

        assert chunk.records == [rec(1, "WorkflowStarted")]
        assert chunk.whole is True
        assert chunk.torn == b""
        assert chunk.cursor.last_seq == 1
        assert chunk.cursor.size > 0

    def test_create_of_an_existing_id_raises_workflow_exists_and_keeps_the_history(self, store):
        store.create("w1", rec(1, "WorkflowStarted"))

        with pytest.raises(WorkflowExists):
            store.create("w1", rec(1, "Other"))

        assert store.read("w1").records == [rec(1, "WorkflowStarted")]

    def test_read_of_an_unknown_id_raises_workflow_not_found(self, store):
        with pytest.raises(WorkflowNotFound):
            store.read("nobody")
        store.create("w1", rec(1))
        with pytest.raises(WorkflowNotFound):
            store.read("w2")

    def test_workflow_ids_lists_the_created_ones_sorted(self, store):
        assert store.workflow_ids() == []
        for workflow_id in ["b-2", "A", "a.1", "c_3"]:
            store.create(workflow_id, rec(1))

        assert store.workflow_ids() == sorted(["b-2", "A", "a.1", "c_3"])

    @pytest.mark.parametrize("bad_id", INVALID_IDS)
    def test_create_refuses_an_invalid_id(self, store, bad_id):
        with pytest.raises(InvalidWorkflowId):
            store.create(bad_id, rec(1))
        assert store.workflow_ids() == []

    @pytest.mark.parametrize("bad_id", ["../escape", "a/b", ".hidden"])
    def test_read_refuses_an_invalid_id(self, store, bad_id):
        with pytest.raises(InvalidWorkflowId):
            store.read(bad_id)

    # --- incremental reads ------------------------------------------------------------

    def test_append_returns_a_cursor_that_grew(self, store):
        store.create("w1", rec(1))
        before = store.read("w1").cursor

        after = self.append(store, "w1", rec(2), rec(3))

        assert after.last_seq == 3
        assert after.size > before.size
        assert store.read("w1").cursor.size == after.size

    def test_read_since_a_cursor_returns_only_the_new_records(self, store):
        # Given a reader that has read the history
        store.create("w1", rec(1))
        first = store.read("w1")
        # When two records are appended
        self.append(store, "w1", rec(2), rec(3))
        # Then reading from its cursor gives just those, as a continuation
        chunk = store.read("w1", since=first.cursor)
        assert chunk.records == [rec(2), rec(3)]
        assert chunk.whole is False
        assert chunk.cursor.last_seq == 3

    def test_read_since_the_current_cursor_returns_nothing_new(self, store):
        store.create("w1", rec(1))
        cursor = self.append(store, "w1", rec(2))

        chunk = store.read("w1", since=cursor)

        assert chunk.records == []
        assert chunk.whole is False
        assert chunk.cursor.last_seq == 2
        assert chunk.cursor.size == cursor.size

    def test_read_since_a_stale_cursor_returns_exactly_the_records_after_it(self, store):
        # Given a cursor taken after seq 2, then two more appends
        store.create("w1", rec(1))
        stale = self.append(store, "w1", rec(2))
        self.append(store, "w1", rec(3))
        self.append(store, "w1", rec(4), rec(5))
        # When reading from the stale cursor
        chunk = store.read("w1", since=stale)
        # Then everything after seq 2, and a cursor equal to a fresh read's
        assert seqs(chunk.records) == [3, 4, 5]
        assert chunk.whole is False
        fresh = store.read("w1").cursor
        assert (chunk.cursor.size, chunk.cursor.last_seq) == (fresh.size, fresh.last_seq)

    def test_an_incremental_read_continues_into_an_append(self, store):
        # The engine's loop: read since its cursor, append after that chunk, read again.
        store.create("w1", rec(1))
        start = store.read("w1")
        self.append(store, "w1", rec(2))
        with store.lock("w1"):
            partial = store.read("w1", since=start.cursor)
            cursor = store.append("w1", partial, [rec(3)])

        assert seqs(store.read("w1").records) == [1, 2, 3]
        assert store.read("w1", since=cursor).records == []
        assert store.changed("w1", cursor) is False

    # --- conflicts --------------------------------------------------------------------

    def test_append_after_a_chunk_that_is_no_longer_the_tail_conflicts_and_writes_nothing(self, store):
        # Given two readers of the same tail, and the first one appends
        store.create("w1", rec(1))
        stale = store.read("w1")
        self.append(store, "w1", rec(2, note="first writer"))
        # When the second appends after its stale chunk
        with pytest.raises(ConflictError):
            with store.lock("w1"):
                store.append("w1", stale, [rec(2, note="second writer")])
        # Then only the first writer's record is there
        assert store.read("w1").records == [rec(1), rec(2, note="first writer")]

    @pytest.mark.parametrize("batch", [[3], [2, 4], [1], [2, 2]])
    def test_records_with_a_seq_gap_or_repeat_conflict_and_write_nothing(self, store, batch):
        store.create("w1", rec(1))
        before = store.read("w1")

        with pytest.raises(ConflictError):
            with store.lock("w1"):
                store.append("w1", before, [rec(seq) for seq in batch])

        after = store.read("w1")
        assert after.records == [rec(1)]
        assert after.cursor.size == before.cursor.size

    # --- changed ----------------------------------------------------------------------

    def test_changed_is_false_right_after_a_read(self, store):
        store.create("w1", rec(1))
        cursor = store.read("w1").cursor

        assert store.changed("w1", cursor) is False

    def test_changed_is_false_right_after_an_append_through_the_same_store(self, store):
        store.create("w1", rec(1))

        cursor = self.append(store, "w1", rec(2))

        assert store.changed("w1", cursor) is False

    def test_changed_is_true_after_another_append(self, store):
        # Given cursors from a read and from an append
        store.create("w1", rec(1))
        read_cursor = store.read("w1").cursor
        append_cursor = self.append(store, "w1", rec(2))
        assert store.changed("w1", read_cursor) is True  # the append moved past the read
        # When someone else reads and appends
        self.append(store, "w1", rec(3))
        # Then both old cursors see the change
        assert store.changed("w1", read_cursor) is True
        assert store.changed("w1", append_cursor) is True

    def test_changed_is_true_for_a_workflow_that_does_not_exist(self, store):
        store.create("w1", rec(1))
        cursor = store.read("w1").cursor

        assert store.changed("w2", cursor) is True

    # --- values that cannot be stored -------------------------------------------------

    def test_a_nan_value_is_refused_at_create_as_an_invalid_value_and_nothing_is_created(self, store):
        # Both stores refuse it with InvalidValue (a LocalFlowError) before anything is written.
        with pytest.raises(InvalidValue):
            store.create("w1", rec(1, value=float("nan")))

        assert store.workflow_ids() == []
        with pytest.raises(WorkflowNotFound):
            store.read("w1")

    def test_a_nan_value_is_refused_at_append_as_an_invalid_value_and_nothing_is_written(self, store):
        store.create("w1", rec(1))
        before = store.read("w1")

        with pytest.raises(InvalidValue):
            with store.lock("w1"):
                store.append("w1", before, [rec(2), rec(3, value=float("nan"))])

        assert store.read("w1").records == [rec(1)]
        assert store.changed("w1", before.cursor) is False

    def test_an_event_over_the_line_limit_is_refused_at_create(self, store):
        with pytest.raises(PayloadTooLarge):
            store.create("w1", rec(1, blob="x" * MAX_EVENT_BYTES))

        assert store.workflow_ids() == []

    def test_an_event_over_the_line_limit_is_refused_at_append_and_nothing_is_written(self, store):
        store.create("w1", rec(1))
        before = store.read("w1")

        with pytest.raises(PayloadTooLarge):
            with store.lock("w1"):
                store.append("w1", before, [rec(2), rec(3, blob="x" * MAX_EVENT_BYTES)])

        assert store.read("w1").records == [rec(1)]
        # ...and the store still takes an append after that chunk
        assert self.append(store, "w1", rec(2)).last_seq == 2

    # --- the engine on top --------------------------------------------------------------

    def test_the_engine_runs_a_flow_to_completion_on_this_store(self, store, tmp_path):
        # Given a home with a one-line flow and an engine over this store
        flows = tmp_path / "flows"
        flows.mkdir(exist_ok=True)
        (flows / "Quick.flow").write_text("flow Quick\n  return 7\n")
        engine = Engine(tmp_path, clock=lambda: 1_000, store=store)
        # When it is started and transacted once
        workflow_id = engine.start("Quick", {})
        transaction = engine.transact(workflow_id)
        # Then it completed, the history says so, and the engine knows it is up to date
        assert transaction.state.status == "completed"
        loaded = engine.load(workflow_id)
        assert loaded.state.status == "completed"
        assert [type(e).__name__ for e in loaded.events] == ENGINE_EVENT_TYPES
        assert engine.changed(workflow_id) is False
        assert engine.workflow_ids() == [workflow_id]


class TestFileStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FileStore:
        # FileStore.create needs var/workflows/ to exist (StorageError otherwise); the engine
        # makes it before every create, so the fixture does the same.
        Engine(tmp_path).ensure_layout()
        return FileStore(Paths.at(tmp_path))

    def history(self, store: FileStore, workflow_id: str) -> Path:
        return store.paths.history(workflow_id)

    def test_a_torn_tail_is_ignored_by_read_and_repaired_by_the_next_append(self, store):
        # Given a history whose last write was cut short by a crash
        store.create("w1", rec(1))
        self.append(store, "w1", rec(2))
        path = self.history(store, "w1")
        valid_size = path.stat().st_size
        with open(path, "ab") as f:
            f.write(b'{"seq":3,"ts":1003,"type":"Tim')
        # When it is read
        chunk = store.read("w1")
        # Then the torn bytes are not records, and the cursor stops before them
        assert seqs(chunk.records) == [1, 2]
        assert chunk.torn == b'{"seq":3,"ts":1003,"type":"Tim'
        assert chunk.cursor.size == valid_size
        # When the next append runs after that read
        with store.lock("w1"):
            cursor = store.append("w1", chunk, [rec(3)])
        # Then the torn bytes were kept beside the history and the history is whole again
        assert path.with_name(f"history.jsonl.torn-{valid_size}").read_bytes() == chunk.torn
        assert store.read("w1").records == [rec(1), rec(2), rec(3)]
        assert store.read("w1").torn == b""
        assert cursor.size == path.stat().st_size
        assert store.changed("w1", cursor) is False

    def test_a_stale_chunk_that_saw_a_torn_tail_conflicts_without_truncating_newer_records(self, store):
        # Given two readers that both saw a torn tail
        store.create("w1", rec(1))
        path = self.history(store, "w1")
        with open(path, "ab") as f:
            f.write(b'{"seq":2,"ts"')
        stale = store.read("w1")
        # and the first repairs it and appends
        self.append(store, "w1", rec(2, note="first writer"))
        # When the second appends after its stale chunk
        with pytest.raises(ConflictError):
            with store.lock("w1"):
                store.append("w1", stale, [rec(2, note="second writer")])
        # Then the first writer's record is still there
        assert store.read("w1").records == [rec(1), rec(2, note="first writer")]

    def test_a_same_size_rewrite_makes_an_incremental_read_whole(self, store):
        # Given a cursor after seq 2
        store.create("w1", rec(1))
        old = self.append(store, "w1", rec(2, note="aaaa"))
        path = self.history(store, "w1")
        original = path.read_bytes()
        # When the file is rewritten in place to the same size with a different last record
        rewritten = original[: -len(codec_line(rec(2, note="aaaa")))] + codec_line(rec(2, note="bbbb"))
        assert len(rewritten) == len(original) and rewritten != original
        with open(path, "r+b") as f:
            f.write(rewritten)
        # Then a read from the old cursor cannot continue it: it reads everything
        chunk = store.read("w1", since=old)
        assert chunk.whole is True
        assert chunk.records == [rec(1), rec(2, note="bbbb")]

    def test_a_file_replaced_by_a_new_inode_makes_an_incremental_read_whole(self, store):
        # Given a cursor after seq 1
        store.create("w1", rec(1))
        old = store.read("w1").cursor
        path = self.history(store, "w1")
        # When the history is replaced by a new file that starts with the same bytes
        replacement = path.with_name("replacement.tmp")
        replacement.write_bytes(path.read_bytes() + codec_line(rec(2)))
        os.replace(replacement, path)
        assert path.stat().st_ino != old.inode
        # Then a read from the old cursor does not trust it: it reads everything
        chunk = store.read("w1", since=old)
        assert chunk.whole is True
        assert seqs(chunk.records) == [1, 2]
        assert store.changed("w1", old) is True

    def test_changed_notices_a_same_size_rewrite_through_mtime(self, store):
        # Given a cursor that is up to date
        store.create("w1", rec(1))
        cursor = self.append(store, "w1", rec(2))
        path = self.history(store, "w1")
        assert store.changed("w1", cursor) is False
        # When the file is rewritten in place (same inode, same size) at another time
        data = path.read_bytes()
        with open(path, "r+b") as f:
            f.write(data)
        os.utime(path, ns=(cursor.mtime_ns + 5_000_000, cursor.mtime_ns + 5_000_000))
        assert (path.stat().st_ino, path.stat().st_size) == (cursor.inode, cursor.size)
        # Then changed says so without reading
        assert store.changed("w1", cursor) is True


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()

    def test_corrupt_makes_read_raise_history_corrupt_naming_the_line(self, store):
        # Given a history of three records whose second line went bad
        store.create("w1", rec(1))
        self.append(store, "w1", rec(2), rec(3))
        cursor = store.read("w1").cursor
        store.corrupt("w1", 2, b'{"seq":2,"garbage\n')
        # When it is read, the error names line 2
        with pytest.raises(HistoryCorruptError) as raised:
            store.read("w1")
        assert raised.value.line == 2
        assert "w1" in raised.value.path
        assert ":2:" in str(raised.value)
        # ...and the damage counts as a change
        assert store.changed("w1", cursor) is True

    def test_a_cursor_from_another_store_is_not_continued(self, store):
        other = MemoryStore()
        other.create("w1", rec(1))
        store.create("w1", rec(1))
        self.append(store, "w1", rec(2))

        chunk = store.read("w1", since=other.read("w1").cursor)

        assert chunk.whole is True
        assert seqs(chunk.records) == [1, 2]
        assert store.changed("w1", other.read("w1").cursor) is True

