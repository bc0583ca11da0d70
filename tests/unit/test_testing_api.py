"""localflow.testing: the world users test their own flows in, and every python example of docs/testing.md."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from localflow.core import events as ev
from localflow.errors import NondeterminismError
from localflow.testing import DEFAULT_START_MS, Stuck, fail, hang, succeed, timed_out, world

REPO = Path(__file__).resolve().parents[2]
FLOWS = REPO / "flows"
DOC = REPO / "docs" / "testing.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)

RETRYING = """
flow Retrying
  step flaky:
    run ["flaky"]
    retry 3 every 1h
  sleep 30d
  return flaky.result
"""

WAITS = """
flow Waits
  step go:
    wait signal go
  return go.result
"""


# --- the docs ----------------------------------------------------------------------------------------


def _doc_tests():
    found = []
    for index, block in enumerate(BLOCKS):
        namespace: dict = {}
        exec(compile(block, f"docs/testing.md block {index + 1}", "exec"), namespace)
        found += [(f"block{index + 1}-{name}", fn) for name, fn in namespace.items()
                  if name.startswith("test_") and callable(fn)]
    return found


DOC_TESTS = _doc_tests()


def test_the_testing_guide_has_runnable_examples():
    assert len(BLOCKS) >= 4 and len(DOC_TESTS) >= 5


@pytest.mark.parametrize("test", [t for _, t in DOC_TESTS], ids=[name for name, _ in DOC_TESTS])
def test_docs_example_runs(test, monkeypatch):
    monkeypatch.chdir(REPO)  # the examples say world("flows"), as a user's test run from the project root
    test()


# --- time --------------------------------------------------------------------------------------------


def test_a_month_of_sleeping_and_hours_of_backoff_take_no_real_time_and_are_recorded_as_skipped():
    with world(activities={"flaky": [fail("busy"), fail("busy"), succeed({"ok": 3})]}) as w:
        wid = w.start(RETRYING)
        began = time.monotonic()

        state = w.run_to_end(wid)

        assert time.monotonic() - began < 2
        assert state.result == {"ok": 3}
        events = w.history(wid)
        skips = [e for e in events if isinstance(e, ev.TimeSkipped)]
        assert [s.skipped_ms for s in skips] == [3_600_000, 7_200_000, 30 * 86_400_000]
        for skip in skips:  # each one just before the TimerFired it made due, in the same transaction
            fired = events[skip.seq]
            assert isinstance(fired, ev.TimerFired) and fired.ts == skip.ts
        assert w.now() - DEFAULT_START_MS >= (3 + 30 * 24) * 3_600_000
        assert 0 <= w.skipped_ms - sum(s.skipped_ms for s in skips) < 100  # the clock's own jumps
        w.assert_replays(wid)


def test_run_until_idle_never_skips_time_and_advance_fires_each_timer_at_its_own_moment():
    text = ("flow Two\n  parallel:\n    branch:\n      sleep 1h\n    branch:\n      sleep 3h\n"
            "  return 1\n")
    with world() as w:
        wid = w.start(text)
        w.run_until_idle()
        assert w.now() - DEFAULT_START_MS < 100 and w.count(wid, "TimerStarted") == 2
        assert w.count(wid, "TimerFired") == 0

        before = w.now()
        w.advance("2h")

        first, = w.events(wid, "TimerFired")
        assert first.ts - DEFAULT_START_MS < 3_600_000 + 100  # at 1h, not at the end of the 2h
        assert w.now() == before + 2 * 3_600_000
        assert w.state(wid).status == "running"
        w.advance(3_600_000)
        assert w.result(wid) == 1
        assert sum(e.skipped_ms for e in w.events(wid, "TimeSkipped")) <= 3 * 3_600_000


def test_a_running_activity_is_never_skipped_over():
    text = ("flow Raced\n  race:\n    branch:\n      step slow:\n        run [\"slow\"]\n"
            "    branch:\n      sleep 1h\n  return 1\n")

    def slow(spec):
        time.sleep(0.3)  # real time passes while it runs: the 1h sleep must not be skipped meanwhile
        return succeed("slow won")

    with world(activities={"slow": slow}) as w:
        wid = w.start(text)
        state = w.run_to_end(wid)

        assert state.status == "completed"
        assert w.count(wid, "TimerFired") == 0 and w.count(wid, "TimeSkipped") == 0
        assert w.now() - DEFAULT_START_MS < 1000


def test_a_workflow_waiting_for_a_signal_nobody_sends_is_reported_stuck():
    with world() as w:
        wid = w.start(WAITS)
        with pytest.raises(Stuck, match="waiting for a signal"):
            w.run_to_end(wid)
        w.signal(wid, "go", 5)
        assert w.run_to_end(wid).result == 5


# --- activities --------------------------------------------------------------------------------------


def test_scripts_per_attempt_per_function_and_for_loop_steps():
    text = ('flow Loop\n  input items = ["a", "b"]\n  set out = []\n  for item in items:\n'
            '    step pack:\n      run ["pack", item]\n    set out = out + [pack.result]\n  return out\n')
    with world(activities={"pack": lambda spec: spec.argv[1].upper()}) as w:
        wid = w.start(text)
        assert w.run_to_end(wid).result == ["A", "B"]
        assert [a.step for a in w.attempts] == ["pack[0]", "pack[1]"]


def test_error_kinds_reach_catch_blocks():
    text = ('flow Catches\n  step a:\n    run ["a"]\n    catch timeout:\n      set t = "timeout"\n'
            '  step b:\n    run ["b"]\n    catch error "Declined":\n      return "declined"\n  return "no"\n')
    with world(activities={"a": timed_out(), "b": fail("no money", type="Declined")}) as w:
        wid = w.start(text)
        assert w.run_to_end(wid).result == "declined"


def test_an_unscripted_step_fails_loudly():
    with world(activities={}) as w:
        wid = w.start('flow U\n  step mystery:\n    run ["x"]\n  return 1\n')
        state = w.run_to_end(wid)
        assert state.status == "failed"
        [failed] = w.events(wid, "ActivityFailed")
        assert failed.error["kind"] == "script" and "mystery" in failed.error["message"]


def test_a_sleep_racing_a_hanging_activity_wins_by_skipped_time():
    text = ("flow Raced\n  race:\n    branch:\n      step slow:\n        run [\"slow\"]\n"
            "    branch:\n      sleep 1h\n  set late = true\n  return 1\n")
    with world(activities={"slow": hang}) as w:
        wid = w.start(text)
        assert w.run_to_end(wid).result == 1
        assert w.count(wid, "TimeSkipped") == 1
        [failed] = w.events(wid, "ActivityFailed")
        assert failed.error["kind"] == "cancelled"


def test_a_script_that_raises_is_reported_by_the_run_call():
    def broken(spec):
        raise KeyError("oops")

    with world(activities={"a": broken}) as w:
        wid = w.start('flow B\n  step a:\n    run ["x"]\n  return 1\n')
        with pytest.raises(AssertionError, match="oops"):
            w.run_to_end(wid)


def test_a_hanging_activity_is_cancelled_when_the_workflow_is():
    with world(activities={"forever": hang}) as w:
        wid = w.start('flow H\n  step forever:\n    run ["x"]\n  return 1\n')
        w.run_until_idle()
        w.cancel(wid)
        state = w.run_to_end(wid)
        assert state.status == "cancelled"
        [failed] = w.events(wid, "ActivityFailed")
        assert failed.error["kind"] == "cancelled"


def test_child_flows_by_name_from_a_flows_folder():
    with world(FLOWS, activities={"hello": lambda spec: "hi " + spec.argv[-1].split()[-1]}) as w:
        wid = w.start("ParentFlow", {"name": "ann"})
        state = w.run_to_end(wid)
        assert state.result["child_said"] == "hi ann"
        assert w.workflows() == sorted([wid, f"{wid}.greet"])


def test_real_activities_run_as_processes_in_a_temporary_home_with_scripts_where_given():
    with world(REPO, real_activities=True, activities={"reserve": succeed({"reservation": "R-x"})}) as w:
        home = w.home
        wid = w.start("PurchaseFlow", {"order_id": "B-2"})
        state = w.run_to_end(wid)
        assert state.result == {"order": "B-2", "reservation": "R-x", "receipt": "RC-B-2"}
        assert (home / "var" / "workflows" / wid / "logs" / "charge.2.out").is_file()
        assert w.count(wid, "TimeSkipped") == 2  # the retry backoff and the 2s sleep
    assert not home.exists()


def test_assert_replays_catches_an_edited_flow_that_would_decide_differently():
    with world(activities={"flaky": succeed(1)}) as w:
        wid = w.start(RETRYING)
        w.run_to_end(wid)
        w.assert_replays(wid)
        with pytest.raises(NondeterminismError):
            w.assert_replays(wid, flow=RETRYING.replace("sleep 30d", "sleep 31d"))


def test_real_activities_run_call_steps_on_a_worker_pool(tmp_path):
    """(Found by review: with real activities, a call step went to the subprocess runner and stalled.)"""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "pay.py").write_text("def charge(amount):\n    return {'paid': amount}\n")
    (flows / "Py.flow").write_text('flow Py\n  step charge:\n    call pay.charge(amount=3)\n  return charge.result\n')
    from localflow import testing

    with testing.world(flows, real_activities=True) as w:
        workflow_id = w.start("Py", {})
        assert w.run_to_end(workflow_id).result == {"paid": 3}
