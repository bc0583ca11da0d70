"""Workflow ids are safe directory names; timer marker names sort as the schedule."""

from pathlib import Path

import pytest

from localflow.errors import InvalidWorkflowId
from localflow.store.paths import Paths, TimerMarker, parse_timer_marker, validate_workflow_id


@pytest.mark.parametrize("good", ["a", "PurchaseFlow-20261125-203629-a1b2c3", "x.y_z-1", "9" * 128])
def test_valid_ids_are_accepted(good):
    assert validate_workflow_id(good) == good


@pytest.mark.parametrize("bad", ["", "..", "../etc", "a/b", "-a", ".hidden", "a" * 129, "a b", "a\x00", "é", "a..b"])
def test_ids_that_could_escape_or_confuse_are_rejected(bad):
    with pytest.raises(InvalidWorkflowId):
        validate_workflow_id(bad)


def test_workflow_paths_validate_the_id():
    paths = Paths(Path("/home/x"))
    assert paths.history("w1") == Path("/home/x/var/workflows/w1/history.jsonl")
    with pytest.raises(InvalidWorkflowId):
        paths.history("../../etc")


def test_timer_marker_names_round_trip_and_sort_by_fire_time():
    early, late = TimerMarker(999, "wf-b", 2), TimerMarker(1_764_000_000_000, "wf-a", 1)
    assert parse_timer_marker(early.name) == early
    assert sorted([late.name, early.name]) == [early.name, late.name]
    assert parse_timer_marker("0000000000999-wf-b-2.123.tmp") is None


def test_attempt_logs_never_leave_the_logs_directory():
    paths = Paths(Path("/h"))
    log = paths.attempt_log("w", "../../x", 1, "out")
    assert log.parent == Path("/h/var/workflows/w/logs")
