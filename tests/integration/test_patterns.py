"""Every Workflow Control-Flow Pattern flow (flows/patterns/, docs/patterns.md) under one real supervisor.

The flows check their own semantics and fail when they do not hold; this module starts them all
at once (two of CriticalSection), sends the signals and the cancel each one needs, and then checks,
flow by flow, its final status and the recorded facts by ``seq`` (what ran, in which order, what was
cancelled), that ``lf replay`` accepts every history, and that ``lf graph`` draws every flow with its
constructs. The module costs about as long as its slowest flow.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO, SupervisorProcess, alive, history_records, lf, lf_json, wait_for, write_flow

PATTERNS_DIR = REPO / "flows" / "patterns"
HELPERS = {"PatternChild"}  # child flows of the patterns, not patterns of their own
PATTERNS = sorted(p.stem for p in PATTERNS_DIR.glob("*.flow") if p.stem not in HELPERS)
ENDED = ("WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled", "WorkflowTerminated", "WorkflowNondeterministic")

INPUTS = {  # flows started with an input of the test's own
    "MultipleInstancesWithRunTimeKnowledge": {"orders": ["o-1", "o-2", "o-3", "o-4", "o-5"]},
}
SECOND_CRITICAL = "pat-CriticalSection-2"  # CriticalSection runs twice: the two must never overlap


def wid(name: str) -> str:
    return f"pat-{name}"


# --- reading histories ---------------------------------------------------------------------------


def events(home, workflow_id, *types):
    try:
        records = history_records(home, workflow_id)
    except FileNotFoundError:
        return []
    return [r for r in records if not types or r["type"] in types]


def one(home, workflow_id, type_, **fields):
    found = [r for r in events(home, workflow_id, type_) if all(r.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, f"{workflow_id}: expected one {type_} {fields}, found {found}"
    return found[0]


def seq_of(home, workflow_id, type_, **fields) -> int:
    return one(home, workflow_id, type_, **fields)["seq"]


def steps(home, workflow_id, type_) -> list[str]:
    return [r["step"] for r in events(home, workflow_id, type_)]


def variable_sets(home, workflow_id, name) -> list[dict]:
    return [r for r in events(home, workflow_id, "VariableSet") if r["name"] == name]


def ended(home, workflow_id) -> bool:
    return bool(events(home, workflow_id, *ENDED))


def wait_event(home, workflow_id, *types, timeout=30, **fields):
    def found():
        return [r for r in events(home, workflow_id, *types) if all(r.get(k) == v for k, v in fields.items())]
    return wait_for(found, timeout=timeout, what=f"{workflow_id}: {' or '.join(types)} {fields}")[0]


def finished(home, workflow_id, timeout=60) -> dict:
    wait_for(lambda: ended(home, workflow_id), timeout=timeout, what=f"{workflow_id} to end")
    return lf_json(home, "inspect", workflow_id)


def cancelled_attempt(home, workflow_id, step) -> dict:
    """The step's attempt was stopped: it never completed, and its process was killed (its record
    may follow the workflow's ending)."""
    assert step not in steps(home, workflow_id, "ActivityCompleted")
    started = [r for r in events(home, workflow_id, "ActivityStarted") if r["step"] == step]
    failed = wait_event(home, workflow_id, "ActivityFailed", timeout=15, step=step)
    assert failed["error"]["kind"] == "cancelled", failed
    for record in started:
        wait_for(lambda: not alive(record["pid"]), timeout=10, what=f"{step}'s process to be stopped")
    return failed


# --- sending what the flows wait for -------------------------------------------------------------


def send(home, workflow_id, name, data=None):
    done = lf(home, "signal", workflow_id, name, "--data", json.dumps(data))
    assert done.returncode == 0, done.stderr


def drive_implicit_termination(home, w):
    wait_for(lambda: any(r["value"] is True for r in variable_sets(home, w, "main_done")), what="the main path")
    send(home, w, "finish")


def drive_detached_children(home, w):
    wait_for(lambda: ended(home, w), what="the parent to complete")
    for n in range(3):
        child = f"{w}.spawn-{n}-"  # the child of step spawn[n] (ids hold no brackets)
        wait_event(home, child, "WorkflowStarted")
        send(home, child, "release")


def drive_jobs_without_run_time_knowledge(home, w):
    send(home, w, "job", {"name": "j1", "hold": True})  # runs until `release`
    wait_event(home, w, "SignalTaken")
    send(home, w, "job", {"name": "j2", "hold": False})  # added while j1 runs
    send(home, w, "job", {"name": "j3", "hold": False})
    wait_event(home, w, "ActivityCompleted", step="handle[1]")
    wait_event(home, w, "ActivityCompleted", step="handle[2]")
    send(home, w, "release")
    send(home, w, "close")


def drive_deferred_choice(home, w):
    wait_event(home, w, "ParallelStarted")
    send(home, w, "reject", {"by": "ann", "reason": "too expensive"})


def drive_milestone(home, w):
    wait_event(home, w, "ScopeStarted")
    send(home, w, "change", {"n": 1, "during": True})
    send(home, w, "change", {"n": 2, "during": True})
    send(home, w, "dispatched")  # the milestone is passed: the handler listens no more
    send(home, w, "change", {"n": 3, "during": False})
    send(home, w, "delivered")


def drive_cancel_task(home, w):
    wait_event(home, w, "ActivityStarted", step="task")
    send(home, w, "cancel", {"by": "ops"})


def drive_cancel_case(home, w):
    wait_event(home, w, "ActivityStarted", step="long")
    done = lf(home, "cancel", w, "--reason", "the customer withdrew")
    assert done.returncode == 0, done.stderr


def drive_transient_trigger(home, w):
    send(home, w, "ping", "early")  # nothing listens yet
    send(home, w, "open", "listen")
    wait_event(home, w, "ScopeStarted")
    send(home, w, "ping", "late")
    send(home, w, "close")


def drive_persistent_trigger(home, w):
    send(home, w, "trigger", "early")  # before anything waits for it
    send(home, w, "begin")


def drive_cancel_region(home, w):
    wait_event(home, w, "ActivityStarted", step="pick")
    wait_event(home, w, "ActivityStarted", step="pack")
    send(home, w, "cancel", "region")


def drive_cancel_multiple_instances(home, w):
    wait_event(home, w, "ActivityCompleted", step="work[0]")
    wait_event(home, w, "ActivityStarted", step="work[1]")
    wait_event(home, w, "ActivityStarted", step="work[2]")
    send(home, w, "cancel")


def drive_complete_multiple_instances(home, w):
    wait_event(home, w, "ActivityCompleted", step="fetch[0]")
    wait_event(home, w, "ActivityStarted", step="fetch[1]")
    wait_event(home, w, "ActivityStarted", step="fetch[2]")
    send(home, w, "complete")


def drive_dynamic_partial_join(home, w):
    for name, hold in (("j1", False), ("j2", False), ("j3", True)):  # queued: all taken at once
        send(home, w, "job", {"name": name, "hold": hold})
    send(home, w, "ready")
    wait_event(home, w, "LoopClosed")
    send(home, w, "release")  # j3, still running after the join, finishes in the background
    wait_event(home, w, "ActivityCompleted", step="work[2]")
    send(home, w, "finish")


# The pitfalls docs/patterns.md describes, each shown by a small flow of its own. A task that wins a
# race here (as in the pattern flows) takes half a second, so that the losers' processes have started
# when they are cancelled (see the xfail test of test_patterns_inprocess.py for the other case).
PITFALLS = {
    "PitfallLosingWait": """
flow PitfallLosingWait
  race:
    branch:
      step quick:
        run ["flows/patterns/activities/work.sh", "quick"]
    branch:
      step answer:
        wait signal answer
  return answer.ended
""",
    "PitfallRaceBranchFails": """
flow PitfallRaceBranchFails
  race:
    branch:
      step bad:
        run ["sh", "-c", "sleep 0.5; exit 3"]
    branch:
      step good:
        run ["sleep", "30"]
  return good.result
""",
    "PitfallCaughtFailureWins": """
flow PitfallCaughtFailureWins
  set winner = "none"
  race:
    branch:
      step bad:
        run ["sh", "-c", "sleep 0.5; exit 3"]
        catch:
          set winner = "bad (caught)"
    branch:
      step good:
        run ["sleep", "30"]
      set winner = "good"
  return winner
""",
    "PitfallFirstGoodMirror": """
flow PitfallFirstGoodMirror
  set winner = "none"
  race:
    branch:
      step mirror_a:
        run ["sh", "-c", "exit 3"]
        catch:
          step a_failed:
            wait signal never_sent
      set winner = "a"
    branch:
      step mirror_b:
        run ["flows/patterns/activities/work.sh", "b", "0.5"]
        catch:
          step b_failed:
            wait signal never_sent
      set winner = "b"
    branch:
      sleep 5m
      fail "no mirror answered within 5 minutes"
  return winner
""",
    "PitfallSelfSignal": """
flow PitfallSelfSignal
  input python
  set winner = "none"
  race:
    branch:
      step notify:
        run [python, "-m", "localflow", "--home", ".", "signal", workflow.id, "done", "--data", "1"]
      set winner = "notify"
    branch:
      step done:
        wait signal done
      set winner = "done"
  return winner
""",
    "PitfallReturnCancelsBackground": """
flow PitfallReturnCancelsBackground
  parallel first 1 keep rest:
    branch:
      step quick:
        run ["flows/patterns/activities/work.sh", "quick", "0.5"]
    branch:
      step background:
        run ["sleep", "30"]
  return "early"
""",
}
PITFALL_INPUTS = {"PitfallSelfSignal": {"python": sys.executable}}

DRIVERS = {
    "ImplicitTermination": drive_implicit_termination,
    "MultipleInstancesWithoutSynchronization": drive_detached_children,
    "MultipleInstancesWithoutRunTimeKnowledge": drive_jobs_without_run_time_knowledge,
    "DeferredChoice": drive_deferred_choice,
    "Milestone": drive_milestone,
    "CancelTask": drive_cancel_task,
    "CancelCase": drive_cancel_case,
    "TransientTrigger": drive_transient_trigger,
    "PersistentTrigger": drive_persistent_trigger,
    "CancelRegion": drive_cancel_region,
    "CancelMultipleInstanceActivity": drive_cancel_multiple_instances,
    "CompleteMultipleInstanceActivity": drive_complete_multiple_instances,
    "DynamicPartialJoinForMultipleInstances": drive_dynamic_partial_join,
}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A home with the repo's flows, one supervisor, one workflow per pattern flow, and their drivers."""
    home = tmp_path_factory.mktemp("patterns") / "home"
    shutil.copytree(REPO / "flows", home / "flows")
    for name, source in PITFALLS.items():
        write_flow(home, f"pitfalls/{name}", source.lstrip())
    sup = SupervisorProcess(home)

    def start(name, workflow_id):
        args = ["start", name, "--id", workflow_id]
        given = {**INPUTS, **PITFALL_INPUTS}.get(name)
        if given:
            args += ["--input", json.dumps(given)]
        done = lf(home, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    pool = ThreadPoolExecutor(max_workers=16)
    started = [pool.submit(start, name, wid(name)) for name in PATTERNS]
    started.append(pool.submit(start, "CriticalSection", SECOND_CRITICAL))
    started += [pool.submit(start, name, wid(name)) for name in PITFALLS]
    ids = [future.result() for future in started]
    assert ids == [wid(name) for name in PATTERNS] + [SECOND_CRITICAL] + [wid(name) for name in PITFALLS]
    drivers = {name: pool.submit(drive, home, wid(name)) for name, drive in DRIVERS.items()}
    yield home, drivers, sup
    pool.shutdown(wait=False, cancel_futures=True)
    sup.stop(signal.SIGTERM)


# --- what each flow must have recorded -----------------------------------------------------------


def check_sequence(home, w, details):
    assert details["result"] == ["a", "ab", "abc"]
    assert seq_of(home, w, "ActivityCompleted", step="a") < seq_of(home, w, "ActivityScheduled", step="b")
    assert seq_of(home, w, "ActivityCompleted", step="b") < seq_of(home, w, "ActivityScheduled", step="c")


def check_parallel_split(home, w, details):
    assert details["result"] == ["a", "b", "c"]
    starts = [seq_of(home, w, "ActivityStarted", step=s) for s in "abc"]
    first_end = min(r["seq"] for r in events(home, w, "ActivityCompleted"))
    assert max(starts) < first_end  # all three ran at the same time


def check_synchronization(home, w, details):
    assert details["result"] == ["medium", "quick", "slow"]
    ends = [seq_of(home, w, "ActivityCompleted", step=s) for s in ("quick", "medium", "slow")]
    assert max(ends) < seq_of(home, w, "ActivityScheduled", step="after")


def check_exclusive_choice(home, w, details):
    assert details["result"] == ["small", "medium", "large"]
    choices = [r["branch"] for r in events(home, w, "BranchChosen") if ":body[" in r["frame"]]
    assert choices == ["else", "then1", "then0"]  # one arm per iteration of the loop
    assert steps(home, w, "ActivityScheduled") == ["small[0]", "medium[1]", "large[2]"]


def check_simple_merge(home, w, details):
    assert details["result"] == ["express", "standard"]
    assert steps(home, w, "ActivityScheduled") == ["express[0]", "ship[0]", "standard[1]", "ship[1]"]


def check_multi_choice(home, w, details):
    assert details["result"] == ["email", "letter"]
    assert one(home, w, "ParallelStarted")["chosen"] == [0, 2]
    assert "send_sms" not in steps(home, w, "ActivityScheduled")


def check_structured_synchronizing_merge(home, w, details):
    assert details["result"] == [2, 1, 3, 0]
    assert [r["chosen"] for r in events(home, w, "ParallelStarted")] == [[0, 2], [1], [0, 1, 2], []]
    for i in range(4):
        merge = seq_of(home, w, "ActivityScheduled", step=f"merge[{i}]")
        branches = [r["seq"] for r in events(home, w, "ActivityCompleted") if r["step"].endswith(f"[{i}]")
                    and not r["step"].startswith("merge")]
        assert all(seq < merge for seq in branches)


def check_keep_rest(home, w, names, at_join):
    """A join that went on after ``at_join`` branches while the others ran on to their end, and a
    workflow that completed only after them."""
    [join] = variable_sets(home, w, "at_join")
    assert len(join["value"]) == at_join
    ends = [seq_of(home, w, "ActivityCompleted", step=s) for s in names]
    assert sum(seq > join["seq"] for seq in ends) == len(names) - at_join  # finished after the join
    assert max(ends) < seq_of(home, w, "WorkflowCompleted")
    assert not events(home, w, "ActivityFailed")


def check_structured_discriminator(home, w, details):
    assert details["result"] is None
    check_keep_rest(home, w, ["mirror_a", "mirror_b", "mirror_c"], 1)
    assert seq_of(home, w, "ActivityScheduled", step="use_first") < max(
        seq_of(home, w, "ActivityCompleted", step=s) for s in ("mirror_b", "mirror_c"))


def check_implicit_termination(home, w, details):
    assert details["result"] is None
    main_done = [r for r in variable_sets(home, w, "main_done") if r["value"] is True][0]
    assert main_done["seq"] < seq_of(home, w, "SignalConsumed", step="finish")
    assert seq_of(home, w, "ActivityCompleted", step="cleanup") < seq_of(home, w, "WorkflowCompleted")


def check_detached_children(home, w, details):
    children = [f"{w}.spawn-{n}-" for n in range(3)]
    assert details["result"] == children
    parent_end = one(home, w, "WorkflowCompleted")["ts"]
    for n, child in enumerate(children):
        child_details = finished(home, child)
        assert child_details["status"] == "completed"
        started = one(home, child, "WorkflowStarted")
        assert started["parent"] == {"workflow_id": w, "step": f"spawn[{n}]", "detached": True}
        assert one(home, child, "SignalReceived")["ts"] >= parent_end  # it ran on after its parent ended
    assert all(r["detached"] for r in events(home, w, "ChildStarted"))


def check_design_time_instances(home, w, details):
    assert details["result"] == ["frame", "seat", "wheel"]
    starts = [seq_of(home, w, "ActivityStarted", step=f"make[{i}]") for i in range(3)]
    assert max(starts) < min(r["seq"] for r in events(home, w, "ActivityCompleted"))
    assert one(home, w, "LoopStarted")["items"] == ["wheel", "frame", "seat"]


def check_run_time_instances(home, w, details):
    orders = INPUTS["MultipleInstancesWithRunTimeKnowledge"]["orders"]
    assert details["result"] == orders
    assert one(home, w, "LoopStarted")["items"] == orders
    assert sorted(steps(home, w, "ActivityCompleted")) == [f"handle[{i}]" for i in range(5)]


def check_no_run_time_knowledge(home, w, details):
    assert details["result"] == ["j1", "j2", "j3"]
    taken = events(home, w, "SignalTaken")
    assert [r["instance"] for r in taken] == [0, 1, 2]
    assert one(home, w, "LoopClosed")["reason"] == "signal"
    # instances 1 and 2 were added, and ran to their end, while instance 0 still ran
    released = seq_of(home, w, "SignalConsumed", step="hold[0]")
    assert taken[2]["seq"] < seq_of(home, w, "ActivityCompleted", step="handle[2]") < released
    assert released < seq_of(home, w, "ActivityCompleted", step="handle[0]")


def check_deferred_choice(home, w, details):
    assert details["result"] == {"taken": "reject", "decision": {"by": "ann", "reason": "too expensive"}}
    assert steps(home, w, "SignalConsumed") == ["reject"]
    assert not events(home, w, "TimerFired")


def check_interleaved(home, w, tasks):
    """Each task ran under the lock, and the lock's holdings never overlapped (by seq)."""
    held = sorted((seq_of(home, w, "LockAcquired", frame=r["frame"], at=r["at"]), r["seq"])
                  for r in events(home, w, "LockReleased"))
    assert len(held) == len(tasks)
    for (_, released), (acquired, _) in zip(held, held[1:]):
        assert released < acquired
    for task in tasks:
        start, end = seq_of(home, w, "ActivityStarted", step=task), seq_of(home, w, "ActivityCompleted", step=task)
        assert any(a < start and end < r for a, r in held)


def check_interleaved_parallel_routing(home, w, details):
    assert sorted(details["result"]) == ["check", "invoice", "label", "pack"]
    assert details["result"].index("pack") < details["result"].index("label")
    check_interleaved(home, w, ["pack", "label", "check", "invoice"])


def check_milestone(home, w, details):
    assert details["result"] == [{"n": 1, "during": True}, {"n": 2, "during": True}]
    changes = [r for r in events(home, w, "SignalReceived") if r["signal"] == "change"]
    taken = [r["signal_seq"] for r in events(home, w, "SignalTaken")]
    assert taken == [changes[0]["seq"], changes[1]["seq"]] and changes[2]["seq"] not in taken
    assert seq_of(home, w, "SignalConsumed", step="dispatched") < changes[2]["seq"]


def check_cancel_task(home, w, details):
    assert details["result"] == {"cancelled_by": {"by": "ops"}, "after": "after"}
    failed = cancelled_attempt(home, w, "task")
    assert failed["seq"] > seq_of(home, w, "SignalConsumed", step="cancel")
    assert [r["value"] for r in variable_sets(home, w, "task_done")] == [False]


def check_cancel_case(home, w, details):
    assert details["compensated"] == ["book"]
    cancelled_attempt(home, w, "long")
    assert "undo:book" in steps(home, w, "ActivityCompleted")
    assert not events(home, w, "WorkflowFailed") and not events(home, w, "WorkflowCompleted")


def check_structured_loop(home, w, details):
    assert details["result"] == {"ticks": ["t0", "t1", "t2"], "repeats": 4, "odd": [1, 3, 5, 7]}
    tests = [(r["iteration"], r["go"]) for r in events(home, w, "LoopIterated")]
    assert tests[:4] == [(0, True), (1, True), (2, True), (3, False)]  # the while loop
    assert tests[4:8] == [(0, True), (1, True), (2, True), (3, True)]  # repeat: the 4th test stops it
    assert tests[8] == (4, False)
    jumps = [r["jump"] for r in events(home, w, "LoopJumped")]
    assert jumps == ["continue", "continue", "continue", "break"]


def check_recursion(home, w, details):
    assert details["result"] == {"depth": 3, "levels": 3}
    child = w
    for depth in (2, 1, 0):
        child += ".inner"
        assert lf_json(home, "inspect", child)["result"] == {"depth": depth, "levels": depth}
    assert not events(home, child, "ChildStarted")


def check_transient_trigger(home, w, details):
    assert details["result"] == ["late"]
    pings = [r for r in events(home, w, "SignalReceived") if r["signal"] == "ping"]
    assert [p["data"] for p in pings] == ["early", "late"]
    scope = seq_of(home, w, "ScopeStarted")
    assert pings[0]["seq"] < scope < pings[1]["seq"]
    assert one(home, w, "SignalTaken")["signal_seq"] == pings[1]["seq"]
    assert one(home, w, "SignalConsumed", step="leftover")["signal_seq"] == pings[0]["seq"]


def check_persistent_trigger(home, w, details):
    assert details["result"] == {"trigger": "early", "gave_up": True}
    trigger = one(home, w, "SignalReceived", signal="trigger")
    assert trigger["seq"] < seq_of(home, w, "SignalConsumed", step="begin") < seq_of(
        home, w, "SignalConsumed", step="trigger")
    assert one(home, w, "TimerStarted", step="nothing")["purpose"] == "signal-timeout"
    assert one(home, w, "CatchEntered", step="nothing")["error"]["kind"] == "timeout"


def check_cancel_region(home, w, details):
    assert details["result"] == {"cancelled_by": "region", "after": "after"}
    for step in ("pick", "pack"):
        cancelled_attempt(home, w, step)
    assert "ship" not in steps(home, w, "ActivityScheduled")


def check_cancel_multiple_instances(home, w, details):
    assert details["result"] == {"outcome": "cancelled", "finished": ["a"]}
    assert steps(home, w, "ActivityCompleted") == ["work[0]"]
    for step in ("work[1]", "work[2]"):
        cancelled_attempt(home, w, step)


def check_complete_multiple_instances(home, w, details):
    assert details["result"] == {"how": "forced", "results": ["q1"], "decided": "best-of-1"}
    for step in ("fetch[1]", "fetch[2]"):
        cancelled_attempt(home, w, step)
    assert seq_of(home, w, "SignalConsumed", step="complete") < seq_of(home, w, "ActivityScheduled", step="decide")


def check_cancelling_discriminator(home, w, details):
    assert details["result"] == "fast"
    for step in ("slow", "slower"):
        cancelled_attempt(home, w, step)


def check_structured_partial_join(home, w, details):
    assert details["result"] is None
    check_keep_rest(home, w, ["review_a", "review_b", "review_c"], 2)


def check_cancelling_partial_join(home, w, details):
    assert details["result"] == ["a", "b"]
    assert sorted(steps(home, w, "ActivityCompleted")) == ["decide", "review_a", "review_b"]
    cancelled_attempt(home, w, "review_c")


def check_static_partial_join_mi(home, w, details):
    assert details["result"] is None
    check_keep_rest(home, w, [f"work[{i}]" for i in range(4)], 2)


def check_cancelling_partial_join_mi(home, w, details):
    assert details["result"] == ["a", "b"]
    for step in ("work[2]", "work[3]"):
        cancelled_attempt(home, w, step)


def check_dynamic_partial_join_mi(home, w, details):
    assert details["result"] == {"at_join": ["j1", "j2"], "all": ["j1", "j2", "j3"]}
    jobs = [r for r in events(home, w, "SignalReceived") if r["signal"] == "job"]
    closed = one(home, w, "LoopClosed")
    assert closed["reason"] == "until" and [r["signal_seq"] for r in events(home, w, "SignalTaken")] == [
        r["seq"] for r in jobs]
    at_join = one(home, w, "VariableSet", name="at_join")
    assert closed["seq"] < at_join["seq"] < seq_of(home, w, "ActivityCompleted", step="work[2]")  # went on at once


def check_critical_section(home, w, details):
    assert details["status"] == "completed"
    if w != wid("CriticalSection"):
        return
    other = finished(home, SECOND_CRITICAL)
    assert other["status"] == "completed", other
    held = []  # every holding of the home-wide lock by either workflow, from its recorded grant to its release
    for workflow_id in (w, SECOND_CRITICAL):
        assert [r["scope"] for r in events(home, workflow_id, "LockRequested")] == ["home", "home"]
        for released in events(home, workflow_id, "LockReleased"):
            granted = one(home, workflow_id, "LockGranted", frame=released["frame"], at=released["at"])
            assert granted["seq"] < released["seq"]
            held.append((granted["ts"], released["ts"], workflow_id))
        assert not events(home, workflow_id, "LockAcquired")  # home-wide: only the supervisor grants
    held.sort()
    assert len(held) == 4
    for (_, released, _), (granted, _, _) in zip(held, held[1:]):
        assert released <= granted, f"two holders overlapped: {held}"


def check_interleaved_routing(home, w, details):
    assert sorted(details["result"]) == ["debts", "id", "income"]
    check_interleaved(home, w, ["check_id", "check_income", "check_debts"])


def check_thread_merge(home, w, details):
    assert details["result"] == ["t0", "t1", "t2"]
    ends = [seq_of(home, w, "ActivityCompleted", step=f"work[{i}]") for i in range(3)]
    assert max(ends) < seq_of(home, w, "ActivityScheduled", step="merge")


def check_thread_split(home, w, details):
    assert details["result"] == [0, 1, 2]
    starts = [seq_of(home, w, "ActivityStarted", step=f"work[{i}]") for i in range(3)]
    assert max(starts) < min(r["seq"] for r in events(home, w, "ActivityCompleted"))


def check_explicit_termination(home, w, details):
    assert details["result"] == {"ended_by": "quick", "slow_done": False}
    cancelled_attempt(home, w, "slow")
    assert [r["value"] for r in variable_sets(home, w, "slow_done")] == [False]


CHECKS = {
    "Sequence": check_sequence,
    "ParallelSplit": check_parallel_split,
    "Synchronization": check_synchronization,
    "ExclusiveChoice": check_exclusive_choice,
    "SimpleMerge": check_simple_merge,
    "MultiChoice": check_multi_choice,
    "StructuredSynchronizingMerge": check_structured_synchronizing_merge,
    "StructuredDiscriminator": check_structured_discriminator,
    "ImplicitTermination": check_implicit_termination,
    "MultipleInstancesWithoutSynchronization": check_detached_children,
    "MultipleInstancesWithDesignTimeKnowledge": check_design_time_instances,
    "MultipleInstancesWithRunTimeKnowledge": check_run_time_instances,
    "MultipleInstancesWithoutRunTimeKnowledge": check_no_run_time_knowledge,
    "DeferredChoice": check_deferred_choice,
    "InterleavedParallelRouting": check_interleaved_parallel_routing,
    "Milestone": check_milestone,
    "CancelTask": check_cancel_task,
    "CancelCase": check_cancel_case,
    "StructuredLoop": check_structured_loop,
    "Recursion": check_recursion,
    "TransientTrigger": check_transient_trigger,
    "PersistentTrigger": check_persistent_trigger,
    "CancelRegion": check_cancel_region,
    "CancelMultipleInstanceActivity": check_cancel_multiple_instances,
    "CompleteMultipleInstanceActivity": check_complete_multiple_instances,
    "CancellingDiscriminator": check_cancelling_discriminator,
    "StructuredPartialJoin": check_structured_partial_join,
    "CancellingPartialJoin": check_cancelling_partial_join,
    "StaticPartialJoinForMultipleInstances": check_static_partial_join_mi,
    "CancellingPartialJoinForMultipleInstances": check_cancelling_partial_join_mi,
    "DynamicPartialJoinForMultipleInstances": check_dynamic_partial_join_mi,
    "CriticalSection": check_critical_section,
    "InterleavedRouting": check_interleaved_routing,
    "ThreadMerge": check_thread_merge,
    "ThreadSplit": check_thread_split,
    "ExplicitTermination": check_explicit_termination,
}

EXPECTED_STATUS = {"CancelCase": "cancelled"}

# What `lf graph` must show of each flow's pattern construct.
GRAPH_SHOWS = {
    "MultiChoice": ["branch 1 if email"],
    "StructuredSynchronizingMerge": ["if choice[0]"],
    "StructuredDiscriminator": ["first 1, keep rest"],
    "ImplicitTermination": ["first 1, keep rest"],
    "MultipleInstancesWithoutSynchronization": ["detached"],
    "MultipleInstancesWithoutRunTimeKnowledge": ["signal job", "close"],
    "InterleavedParallelRouting": ['lock "desk"'],
    "Milestone": ["on signal change as request"],
    "StructuredLoop": ["while i < 3", "repeat", "until roll.result >= 4", "break", "continue"],
    "TransientTrigger": ["on signal ping as p"],
    "StructuredPartialJoin": ["first 2, keep rest"],
    "CancellingPartialJoin": ["first 2"],
    "StaticPartialJoinForMultipleInstances": ["first 2, keep rest"],
    "CancellingPartialJoinForMultipleInstances": ["first 2"],
    "DynamicPartialJoinForMultipleInstances": ["signal job", "len(done) >= need"],
    "CriticalSection": ['lock "patterns-critical-section" (global)'],
    "InterleavedRouting": ['lock "clerk"'],
}


def test_every_pattern_flow_is_started_and_checked(running):
    assert len(PATTERNS) >= 30
    assert set(CHECKS) == set(PATTERNS), "a pattern flow without its checks (or checks without a flow)"
    assert set(DRIVERS) <= set(PATTERNS) and set(GRAPH_SHOWS) <= set(PATTERNS)


@pytest.mark.parametrize("name", PATTERNS)
def test_pattern(running, name):
    home, drivers, _ = running
    workflow_id = wid(name)
    if name in drivers:
        drivers[name].result(timeout=60)  # the driver's own waits and signals went through
    details = finished(home, workflow_id)
    expected = EXPECTED_STATUS.get(name, "completed")
    assert details["status"] == expected, (details.get("error"), lf(home, "history", workflow_id).stdout[-3000:])
    CHECKS[name](home, workflow_id, details)


@pytest.mark.parametrize("name", PATTERNS)
def test_pattern_replays(running, name):
    home, drivers, _ = running
    finished(home, wid(name))
    done = lf(home, "replay", wid(name))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_workflow_of_the_home_replays(running):
    home, drivers, _ = running
    for name in PATTERNS + list(PITFALLS):
        finished(home, wid(name))
    finished(home, SECOND_CRITICAL)
    listed = lf_json(home, "list", "--limit", "0")
    workflows = [row["id"] for row in listed]
    assert len(workflows) >= len(PATTERNS) + len(PITFALLS) + 1 + 3 + 3  # the second critical section, children
    wait_for(lambda: all(ended(home, w) for w in workflows), timeout=30, what="every child to end")
    done = lf(home, "replay", "--all")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", PATTERNS + sorted(HELPERS))
def test_pattern_graph(running, name):
    home, _, _ = running
    path = f"flows/patterns/{name}.flow"
    done = lf(home, "graph", path)
    assert done.returncode == 0, done.stderr
    assert f"flow {name}" in done.stdout
    for shown in GRAPH_SHOWS.get(name, []):
        assert shown in done.stdout, f"lf graph {name} does not show {shown!r}:\n{done.stdout}"
    mermaid = lf(home, "graph", path, "--mermaid")
    assert mermaid.returncode == 0 and mermaid.stdout.startswith("flowchart TD"), mermaid.stderr


# --- the pitfalls of docs/patterns.md -------------------------------------------------------------


def test_pitfall_a_wait_that_lost_its_race_has_no_value(running):
    home, _, _ = running
    details = finished(home, wid("PitfallLosingWait"))
    assert details["status"] == "failed" and "unknown name 'answer'" in details["error"]["message"]
    assert not events(home, wid("PitfallLosingWait"), "SignalConsumed")


def test_pitfall_a_race_branch_that_fails_first_fails_the_workflow(running):
    home, _, _ = running
    w = wid("PitfallRaceBranchFails")
    details = finished(home, w)
    assert details["status"] == "failed" and details["error"]["step"] == "bad"
    cancelled_attempt(home, w, "good")


def test_pitfall_a_caught_failure_ends_its_branch_and_wins_the_race(running):
    home, _, _ = running
    w = wid("PitfallCaughtFailureWins")
    assert finished(home, w)["result"] == "bad (caught)"
    cancelled_attempt(home, w, "good")


def test_pitfall_workaround_a_failed_mirror_waits_instead_of_winning(running):
    home, _, _ = running
    w = wid("PitfallFirstGoodMirror")
    details = finished(home, w)
    assert details["status"] == "completed" and details["result"] == "b"
    assert seq_of(home, w, "CatchEntered", step="mirror_a") < seq_of(home, w, "ActivityCompleted", step="mirror_b")


def test_pitfall_a_signal_an_activity_sends_its_own_workflow_comes_before_its_completion(running):
    home, _, _ = running
    w = wid("PitfallSelfSignal")
    details = finished(home, w)
    assert details["result"] == "done"  # the wait won: the signal was recorded while `notify` still ran
    received = seq_of(home, w, "SignalReceived", signal="done")
    # its work was done, but it lost: it is cancelled, or its completion comes after the race was decided
    ending = wait_event(home, w, "ActivityCompleted", "ActivityFailed", step="notify")
    assert ending["type"] == "ActivityCompleted" or ending["error"]["kind"] == "cancelled"
    assert received < seq_of(home, w, "SignalConsumed", step="done") < seq_of(home, w, "WorkflowCompleted") < ending["seq"]


def test_pitfall_return_cancels_the_branches_keep_rest_left_running(running):
    home, _, _ = running
    w = wid("PitfallReturnCancelsBackground")
    assert finished(home, w)["result"] == "early"
    cancelled_attempt(home, w, "background")
