"""The pattern flows (flows/patterns/) and the flows of docs/patterns.md, in-process and on virtual time.

The same flows as tests/integration/test_patterns.py, under ``localflow.testing.world``: scripted
activities (a task gives its name at once; a task that must be cancellable, ``sleep`` or a
``work.sh`` of 10 seconds or more, hangs until it is), the signals and cancels each flow needs sent
between runs to idle, then the final status and result, and a replay of every history. Fast and
deterministic: no process, no wall clock.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import REPO
from localflow.core import events as ev
from localflow.testing import fail, hang, world

FLOWS = REPO / "flows" / "patterns"
PATTERNS = sorted(p.stem for p in FLOWS.glob("*.flow") if p.stem != "PatternChild")


def task(spec):
    """What a pattern flow's activities do here (scripted): give their name, or hang until cancelled."""
    program, args = spec.argv[0], spec.argv[1:]
    if program == "sleep":
        return hang
    if program.endswith("/work.sh"):
        return hang if len(args) > 1 and float(args[1]) >= 10 else args[0]
    if program.endswith("/critical.sh"):
        return spec.workflow_id
    if program == "echo":
        return json.loads(args[0]) if args[0][:1].isdigit() else args[0]
    raise AssertionError(f"no script for {spec.argv}")


def sorted_is(expected):
    return lambda result: sorted(result) == expected


# name -> (input, what the test sends, one at a time, expected status, expected result or a check of it)
CASES = {
    "Sequence": ({}, [], "completed", ["a", "ab", "abc"]),
    "ParallelSplit": ({}, [], "completed", ["a", "b", "c"]),
    "Synchronization": ({}, [], "completed", ["medium", "quick", "slow"]),
    "ExclusiveChoice": ({}, [], "completed", ["small", "medium", "large"]),
    "SimpleMerge": ({}, [], "completed", ["express", "standard"]),
    "MultiChoice": ({"sms": True, "letter": False}, [], "completed", ["email", "sms"]),
    "StructuredSynchronizingMerge": ({}, [], "completed", [2, 1, 3, 0]),
    "StructuredDiscriminator": ({}, [], "completed", None),
    "ImplicitTermination": ({}, [("signal", "finish", None)], "completed", None),
    "MultipleInstancesWithoutSynchronization": ({"count": 2}, [], "completed", None),  # checked below
    "MultipleInstancesWithDesignTimeKnowledge": ({}, [], "completed", ["frame", "seat", "wheel"]),
    "MultipleInstancesWithRunTimeKnowledge": ({"orders": ["x", "y", "z"]}, [], "completed", ["x", "y", "z"]),
    "MultipleInstancesWithoutRunTimeKnowledge": (
        {"expect": 4}, [("signal", "job", {"name": "j0", "hold": True})]
        + [("signal", "job", {"name": f"j{i}", "hold": False}) for i in range(1, 4)]
        + [("signal", "release", None), ("signal", "close", None)],
        "completed", ["j0", "j1", "j2", "j3"]),
    "DeferredChoice": ({}, [("signal", "approve", "ok")], "completed", {"taken": "approve", "decision": "ok"}),
    "InterleavedParallelRouting": ({}, [], "completed", sorted_is(["check", "invoice", "label", "pack"])),
    "Milestone": ({"expect": 1}, [("signal", "change", {"during": True}), ("signal", "dispatched", None),
                                  ("signal", "change", {"during": False}), ("signal", "delivered", None)],
                  "completed", [{"during": True}]),
    "CancelTask": ({}, [("signal", "cancel", "now")], "completed", {"cancelled_by": "now", "after": "after"}),
    "CancelCase": ({}, [("cancel",)], "cancelled", None),
    "StructuredLoop": ({}, [], "completed", {"ticks": ["t0", "t1", "t2"], "repeats": 4, "odd": [1, 3, 5, 7]}),
    "Recursion": ({"depth": 4}, [], "completed", {"depth": 4, "levels": 4}),
    "TransientTrigger": ({}, [("signal", "ping", "early"), ("signal", "open", "listen"), ("signal", "ping", "late"),
                              ("signal", "close", None)], "completed", ["late"]),
    "PersistentTrigger": ({}, [("signal", "trigger", "early"), ("signal", "begin", None)], "completed",
                          {"trigger": "early", "gave_up": True}),
    "CancelRegion": ({}, [("signal", "cancel", "stop")], "completed", {"cancelled_by": "stop", "after": "after"}),
    "CancelMultipleInstanceActivity": ({}, [("signal", "cancel", None)], "completed",
                                       {"outcome": "cancelled", "finished": ["a"]}),
    "CompleteMultipleInstanceActivity": ({}, [("signal", "complete", None)], "completed",
                                         {"how": "forced", "results": ["q1"], "decided": "best-of-1"}),
    "CancellingDiscriminator": ({}, [], "completed", "fast"),
    "StructuredPartialJoin": ({}, [], "completed", None),
    "CancellingPartialJoin": ({}, [], "completed", ["a", "b"]),
    "StaticPartialJoinForMultipleInstances": ({}, [], "completed", None),
    "CancellingPartialJoinForMultipleInstances": ({}, [], "completed", ["a", "b"]),
    "DynamicPartialJoinForMultipleInstances": (
        {}, [("signal", "job", {"name": "j1", "hold": False}), ("signal", "job", {"name": "j2", "hold": False}),
             ("signal", "job", {"name": "j3", "hold": True}), ("signal", "ready", None),
             ("signal", "release", None), ("signal", "finish", None)],
        "completed", {"at_join": ["j1", "j2"], "all": ["j1", "j2", "j3"]}),
    "CriticalSection": ({}, [], "completed", None),  # checked below, with a second workflow
    "InterleavedRouting": ({}, [], "completed", sorted_is(["debts", "id", "income"])),
    "ThreadMerge": ({}, [], "completed", ["t0", "t1", "t2"]),
    "ThreadSplit": ({}, [], "completed", [0, 1, 2]),
    "ExplicitTermination": ({}, [], "completed", {"ended_by": "quick", "slow_done": False}),
}


def names(w, workflow_id, *types):
    return [type(e).__name__ for e in w.events(workflow_id, *types)]


def test_every_pattern_flow_has_a_case():
    assert set(CASES) == set(PATTERNS)


@pytest.mark.parametrize("name", PATTERNS)
def test_pattern_in_process(name):
    given, actions, status, expected = CASES[name]
    with world(FLOWS, activities=task) as w:
        workflow_id = w.start(name, given, id=f"ip-{name}")
        w.run_until_idle()
        for action in actions:
            if action[0] == "signal":
                w.signal(workflow_id, action[1], action[2])
            else:
                w.cancel(workflow_id)
            w.run_until_idle()
        state = w.run_to_end(workflow_id)
        assert state.status == status, (state.error, [type(e).__name__ for e in w.history(workflow_id)])
        if callable(expected):
            assert expected(state.result), state.result
        elif expected is not None or status == "completed" and name not in _CHECKED_BELOW:
            assert state.result == expected
        for other in w.workflows():
            w.assert_replays(other)


_CHECKED_BELOW = {"MultipleInstancesWithoutSynchronization", "CriticalSection"}


def test_detached_children_outlive_their_parent_in_process():
    with world(FLOWS, activities=task) as w:
        parent = w.start("MultipleInstancesWithoutSynchronization", {"count": 2}, id="ip-detached")
        state = w.run_to_end(parent)
        children = state.result
        assert state.status == "completed" and len(children) == 2
        for child in children:
            assert w.state(child).status == "running"  # waiting for `release`, after its parent completed
            w.signal(child, "release")
            assert w.run_to_end(child).status == "completed"
            w.assert_replays(child)
        w.assert_replays(parent)


def test_critical_sections_of_two_workflows_never_overlap_in_process():
    with world(FLOWS, activities=task) as w:
        first = w.start("CriticalSection", id="ip-cs-1")
        second = w.start("CriticalSection", id="ip-cs-2")
        for workflow_id in (first, second):
            state = w.run_to_end(workflow_id)
            assert state.status == "completed" and state.result == [workflow_id, workflow_id]
            w.assert_replays(workflow_id)
        holdings = []
        for workflow_id in (first, second):
            granted = {(e.frame, e.at): e.ts for e in w.events(workflow_id, "LockGranted")}
            holdings += [(granted[(e.frame, e.at)], e.ts) for e in w.events(workflow_id, "LockReleased")]
        holdings.sort()
        assert len(holdings) == 4
        assert all(released <= next_granted for (_, released), (next_granted, _) in zip(holdings, holdings[1:]))


# --- the flows of docs/patterns.md do what the page says ------------------------------------------

DOC = (REPO / "docs" / "patterns.md").read_text(encoding="utf-8")
DOC_FLOWS = {re.search(r"^flow (\w+)", block, re.M).group(1): block
             for block in re.findall(r"^```flow\n(.*?)^```", DOC, flags=re.S | re.M)}


def doc_task(spec):
    if spec.argv[0] == "curl":  # FirstGoodMirror: mirror a is down, b answers
        return fail("mirror a is down", exit_code=22) if "//a." in spec.argv[-1] else "file from b"
    return task(spec)


@pytest.mark.parametrize("name, given, signals, expected", [
    ("MultiMergeWorkaround", {}, [], ["warehouse", "supplier"]),
    ("ArbitraryCyclesWorkaround", {}, [], 2),
    ("BlockingDiscriminatorWorkaround", {}, [], True),
    ("WaitEnding", {}, [], "escalated"),
    ("WaitEnding", {}, [("approve", {"by": "ann"})], {"by": "ann"}),
    ("FirstGoodMirror", {}, [], "b"),
])
def test_the_flows_of_the_patterns_page(name, given, signals, expected):
    with world(activities=doc_task) as w:
        workflow_id = w.start(DOC_FLOWS[name], given)
        w.run_until_idle()
        for signal_name, data in signals:
            w.signal(workflow_id, signal_name, data)
        state = w.run_to_end(workflow_id)
        assert state.status == "completed", state.error
        result = sorted(state.result) if name == "MultiMergeWorkaround" else state.result
        assert result == (sorted(expected) if name == "MultiMergeWorkaround" else expected)
        w.assert_replays(workflow_id)
        if name == "BlockingDiscriminatorWorkaround":
            ran = [e.step for e in w.events(workflow_id, "ActivityScheduled")]
            assert sorted(ran) == ["mirror_a", "mirror_b", "use_a"] or sorted(ran) == ["mirror_a", "mirror_b", "use_b"]


# --- an engine bug the pattern flows stay clear of --------------------------------------------------

SPAWN_RACE = """
flow SpawnRace
  race:
    branch:
      step bad:
        run ["bad"]
        catch:
          set winner = "bad (caught)"
    branch:
      step good:
        run ["sleep", "30"]
  return 1
"""


def test_a_loser_still_being_spawned_when_the_race_is_decided_is_cancelled_once_started():
    def script(spec):
        if spec.step == "bad":
            return fail("boom")
        time.sleep(0.5)  # a slow spawn: the race is decided meanwhile
        return hang

    with world(activities=script, timeout_s=10) as w:
        workflow_id = w.start(SPAWN_RACE)
        assert w.run_to_end(workflow_id).status == "completed"
        time.sleep(1)
        w.run_until_idle()
        assert not w._scripts.hanging(), "the losing attempt still runs"
        [failed] = [e for e in w.history(workflow_id) if isinstance(e, ev.ActivityFailed) and e.step == "good"]
        assert failed.error["kind"] == "cancelled"  # stopped as soon as it had started
