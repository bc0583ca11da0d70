"""The history file on a real filesystem: creation, appends, torn-tail repair, conflicts."""

import os
import stat

import pytest

from localflow.errors import ConflictError, HistoryCorruptError, UnsafePath, WorkflowExists
from localflow.store import history


def rec(seq, type_="TimerFired", **extra):
    return {"seq": seq, "ts": "2026-11-25T19:20:48.123Z", "type": type_, "timer": seq, **extra}


@pytest.fixture
def path(tmp_path):
    directory = tmp_path / "workflows" / "w1"
    directory.mkdir(parents=True)
    return directory / "history.jsonl"


def test_create_writes_exactly_the_first_event_private_to_the_user(path):
    history.create(path, rec(1, "WorkflowStarted"))
    assert [r["seq"] for r in history.read(path).records] == [1]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_create_refuses_to_overwrite_a_started_workflow(path):
    history.create(path, rec(1))
    with pytest.raises(WorkflowExists):
        history.create(path, rec(1))


def test_create_replaces_a_file_left_empty_by_a_crashed_creation(path):
    path.write_bytes(b"")
    history.create(path, rec(1))
    assert len(history.read(path).records) == 1


def test_append_continues_seq_in_one_batch(path):
    history.create(path, rec(1))
    current = history.read(path)
    history.append(current, [rec(2), rec(3)])
    assert [r["seq"] for r in history.read(path).records] == [1, 2, 3]


def test_append_with_wrong_seq_is_a_conflict_and_writes_nothing(path):
    history.create(path, rec(1))
    size = path.stat().st_size
    with pytest.raises(ConflictError):
        history.append(history.read(path), [rec(3)])
    assert path.stat().st_size == size


def test_append_after_someone_else_wrote_is_a_conflict(path):
    history.create(path, rec(1))
    stale = history.read(path)
    history.append(history.read(path), [rec(2)])
    with pytest.raises(ConflictError):
        history.append(stale, [rec(2)])
    assert [r["seq"] for r in history.read(path).records] == [1, 2]


def test_torn_tail_is_ignored_by_readers_and_kept_then_truncated_by_the_next_writer(path):
    history.create(path, rec(1))
    with open(path, "ab") as handle:
        handle.write(b'{"seq":2,"ts":"20')
    current = history.read(path)
    assert [r["seq"] for r in current.records] == [1] and current.torn
    history.append(current, [rec(2)])
    assert [r["seq"] for r in history.read(path).records] == [1, 2]
    kept = list(path.parent.glob("history.jsonl.torn-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b'{"seq":2,"ts":"20'


def test_mid_file_corruption_is_reported_and_never_repaired(path):
    history.create(path, rec(1))
    history.append(history.read(path), [rec(2), rec(3)])
    data = path.read_bytes().replace(b'"timer":2', b'"timer":7')
    path.write_bytes(data)
    with pytest.raises(HistoryCorruptError) as info:
        history.read(path)
    assert info.value.line == 2
    assert path.read_bytes() == data


def test_history_behind_a_symlink_is_not_followed(path, tmp_path):
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(b"")
    os.symlink(target, path)
    with pytest.raises(UnsafePath, match="symlink"):
        history.read(path)
