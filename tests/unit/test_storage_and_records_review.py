"""Regressions a review of the crash-safety work found: histories the engine writes must read back
(a child's input that is no object, reasons earlier versions recorded as lists, times up to 9999),
a line holding NaN is a damaged line (not a crash), and an outcome a full disk kept out of the
history is written once the disk recovers, without running the attempt again."""

from __future__ import annotations

import time

from localflow.core import events as ev
from localflow.errors import StorageError
from localflow.store import codec
from localflow.testing import succeed, world

import pytest


def record(event: ev.Event) -> dict:
    return ev.to_record(ev.__dict__[type(event).__name__](**{**event.__dict__, "seq": 3, "ts": 1_764_000_000_000}))


def test_records_the_engine_writes_or_wrote_read_back():
    for event in (ev.ChildStarted(frame="root", at=0, step="kid", flow="Kid", input=[1, 2], child_id="p.kid"),
                  ev.CancelRequested(reason=[]), ev.WorkflowTerminated(reason=[]),
                  ev.WorkflowResumed(from_seq=4, reason=[])):
        data = record(event)
        assert ev.from_record(data) == ev.from_record(data)
    late = {**record(ev.TimerFired(timer=1)), "ts": "9999-12-31T23:59:59.999Z"}
    assert ev.from_record(late).ts == 253_402_300_799_999


def test_a_line_holding_nan_or_a_huge_number_is_a_damaged_line():
    for text in (b'{"seq":1,"ts":"2026-01-01T00:00:00.000Z","type":"WorkflowStarted","x":1e400,"crc":"00000000"}',
                 b'{"seq":1,"type":"TimerFired","x":NaN,"crc":"00000000"}'):
        with pytest.raises(codec.LineError, match="cannot store"):
            codec.decode(text)


def test_an_outcome_a_full_disk_kept_out_is_written_later_and_the_call_not_run_again():
    starts = []

    def charge(spec):
        starts.append(spec.attempt)
        return succeed({"ok": 1})

    with world(None, activities={"charge": charge}, timeout_s=30) as w:
        workflow_id = w.start('flow Pay\n  step charge:\n    call shop.charge(amount=1)\n  return charge.result\n')
        store, real_append, refused = w.engine.store, w.engine.store.append, []

        def append(wid, chunk, records):
            # the attempt's own four tries (at once, then after 0.2 s, 1 s and 5 s) meet a full disk
            if len(refused) < 4 and any(r["type"] in ("ActivityCompleted", "ActivityFailed") for r in records):
                refused.append(time.monotonic())
                raise StorageError("could not append: the disk is full")
            return real_append(wid, chunk, records)

        store.append = append
        state = w.run_to_end(workflow_id)  # then the loop writes the kept outcome
        assert len(refused) == 4 and not w.executor._unrecorded
        assert state.result == {"ok": 1} and starts == [1]  # written, not run again
        assert w.count(workflow_id, "ActivityCompleted") == 1
