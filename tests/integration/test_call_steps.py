"""`call` steps (Python functions) end to end: the real `lf` CLI, real `lf supervise`, real workers.

Each test writes a flow and the Python module it calls into a fresh home (tmp_path),
runs it with `lf run` (foreground) or under a real supervisor (`--workers`, `--grace 1`),
and checks what the history, the logs and the process table say. The shipped example
(flows/examples/PythonStep.flow) and docs/activities.md are checked here too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import textwrap
import time
from collections import Counter

from conftest import alive, REPO, history_records, lf, lf_json, wait_for, workflow_status, write_flow

from localflow.dsl import parse_flow


def write_module(home, relative: str, text: str) -> None:
    path = home / "flows" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def events(home, workflow_id, type_=None):
    return [r for r in history_records(home, workflow_id) if type_ is None or r["type"] == type_]


def log(home, workflow_id, name):
    return (home / "var" / "workflows" / workflow_id / "logs" / name).read_text()


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def attempts_of(home, workflow_id, step):
    """How many attempts of ``step`` were scheduled."""
    return sum(1 for r in events(home, workflow_id, "ActivityScheduled") if r["step"] == step)


def pids_in(path):
    """The worker pids a function wrote to ``path`` when it started (call attempts record no ActivityStarted)."""
    return [int(line) for line in path.read_text().split()] if path.exists() else []


# A worker that dies under a call (killed, or gone a moment before the call reached it) fails the attempt
# as "interrupted", retried at once; tests that are not about that look past such attempts.


def counted_failures(home, workflow_id):
    return [r for r in events(home, workflow_id, "ActivityFailed") if r["error"]["kind"] != "interrupted"]


def run_ok(home, flow, *args):
    done = lf(home, "run", flow, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


FNS = """
    import math, os, time
    from localflow import activity

    class CardDeclined(Exception):
        pass

    def charge(order_id, amount):
        print(f"charging {order_id}: {amount}")
        if amount > 100:
            raise CardDeclined(f"over the limit: {amount}")
        return {"receipt": f"RC-{order_id}", "amount": amount}

    def me(fail_first=False):
        info = activity.info()
        print(f"info: {info.workflow_id} {info.step} {info.attempt}")
        if fail_first and info.attempt == 1:
            raise RuntimeError("first attempt fails on purpose")
        return {"workflow_id": info.workflow_id, "step": info.step, "attempt": info.attempt,
                "key": info.idempotency_key, "pid": os.getpid()}

    def note_pid(pidfile):
        if pidfile:
            with open(pidfile, "a") as handle:
                handle.write(f"{os.getpid()}\\n")

    def nap(seconds, mark=None, pidfile=None):
        note_pid(pidfile)
        if mark:
            with open(mark, "a") as handle:
                handle.write(f"start {activity.info().step} {activity.info().attempt}\\n")
        time.sleep(seconds)
        if mark:
            with open(mark, "a") as handle:
                handle.write(f"done {activity.info().step}\\n")
        return os.getpid()

    def sleepy_first(seconds, pidfile=None):
        note_pid(pidfile)
        if activity.info().attempt == 1:
            time.sleep(seconds)
        return {"attempt": activity.info().attempt, "pid": os.getpid()}

    def a_set():
        return {1, 2}

    def nan():
        return {"x": float("nan")}

    def huge():
        return "x" * (2 * 1024 * 1024)

    def pid():
        return os.getpid()
"""


# --- results, exceptions, logs, info() -------------------------------------------------------------


def test_the_return_value_is_the_result_print_goes_to_the_out_log_and_info_tells_the_attempt(home):
    write_module(home, "fns.py", FNS)
    write_flow(home, "Pay", """flow Pay
  input amount = 5
  step charge:
    call fns.charge(order_id="A-1", amount=amount * 2)
  step who:
    call fns.me()
  return {"charge": charge.result, "who": who.result}
""")
    run_ok(home, "Pay", "--id", "pay1")
    result = lf_json(home, "inspect", "pay1")["result"]
    assert result["charge"] == {"receipt": "RC-A-1", "amount": 10}
    assert {k: result["who"][k] for k in ("workflow_id", "step", "key")} == \
        {"workflow_id": "pay1", "step": "who", "key": "pay1:who"}
    assert result["who"]["attempt"] == attempts_of(home, "pay1", "who")
    assert log(home, "pay1", "charge.1.out") == "charging A-1: 10\n"
    assert log(home, "pay1", f"who.{result['who']['attempt']}.out").startswith("info: pay1 who ")
    assert log(home, "pay1", "charge.1.err") == ""
    scheduled = events(home, "pay1", "ActivityScheduled")[0]
    assert scheduled["argv"] == []
    assert scheduled["call"] == {"target": "fns:charge", "kwargs": {"order_id": "A-1", "amount": 10}}


def test_info_on_a_retry_gives_the_next_attempt_and_the_same_idempotency_key(home):
    write_module(home, "fns.py", FNS)
    write_flow(home, "Again", """flow Again
  step who:
    call fns.me(fail_first=true)
    retry 1 every 100ms
  return who.result
""")
    run_ok(home, "Again", "--id", "again1")
    result = lf_json(home, "inspect", "again1")["result"]
    attempts = attempts_of(home, "again1", "who")
    assert (result["attempt"], result["key"], result["step"]) == (attempts, "again1:who", "who")
    assert attempts >= 2 and [f["attempt"] for f in counted_failures(home, "again1")] == [1]
    assert log(home, "again1", "who.1.out") == "info: again1 who 1\n"
    assert log(home, "again1", f"who.{attempts}.out") == f"info: again1 who {attempts}\n"
    assert "RuntimeError: first attempt fails on purpose" in log(home, "again1", "who.1.err")


def test_an_exception_is_caught_by_its_type(home):
    write_module(home, "fns.py", FNS)
    write_flow(home, "Declined", """flow Declined
  step charge:
    call fns.charge(order_id="A-2", amount=500)
    catch error "CardDeclined":
      return {"declined": error.message, "type": error.type, "kind": error.kind, "code": error.exit_code}
  return charge.result
""")
    run_ok(home, "Declined", "--id", "dec1")
    assert lf_json(home, "inspect", "dec1")["result"] == {
        "declined": "CardDeclined: over the limit: 500", "type": "CardDeclined", "kind": "exception", "code": None}
    failed = counted_failures(home, "dec1")
    assert [f["error"]["type"] for f in failed] == ["CardDeclined"]


def test_an_uncaught_exception_fails_the_workflow_with_its_type_and_message(home):
    write_module(home, "fns.py", FNS)
    write_flow(home, "Uncaught", """flow Uncaught
  step charge:
    call fns.charge(order_id="A-3", amount=101)
    catch error "SomethingElse":
      return "not this one"
  return charge.result
""")
    done = lf(home, "run", "Uncaught", "--id", "unc1")
    assert done.returncode == 1, done.stdout + done.stderr
    details = lf_json(home, "inspect", "unc1")
    assert details["status"] == "failed"
    assert details["error"]["message"] == "step 'charge' failed after 1 attempt: CardDeclined: over the limit: 101"
    assert (details["error"]["kind"], details["error"]["type"], details["error"]["step"]) == \
        ("exception", "CardDeclined", "charge")
    attempt = details["steps"][0]["attempts"][0]
    assert attempt["error"] == {"kind": "exception", "type": "CardDeclined",
                                "message": "CardDeclined: over the limit: 101", "exit_code": None}
    err = log(home, "unc1", "charge.1.err")
    assert err.startswith("Traceback (most recent call last):")
    assert 'fns.py", line' in err and "in charge" in err and err.rstrip().endswith("CardDeclined: over the limit: 101")
    assert log(home, "unc1", "charge.1.out") == "charging A-3: 101\n"


def test_a_value_json_cannot_hold_fails_the_attempt_as_output(home):
    write_module(home, "fns.py", FNS)
    write_flow(home, "Values", """flow Values
  step aset:
    call fns.a_set()
    catch:
      set e1 = error
  step nan:
    call fns.nan()
    catch:
      set e2 = error
  step huge:
    call fns.huge()
    catch:
      set e3 = error
  return [e1, e2, e3]
""")
    run_ok(home, "Values", "--id", "val1")
    errors = lf_json(home, "inspect", "val1")["result"]
    assert [e["kind"] for e in errors] == ["output"] * 3
    assert [e["exit_code"] for e in errors] == [None] * 3
    one, two, three = (e["message"] for e in errors)
    assert "return value" in one and "set" in one, one
    assert "return value" in two and ("nan" in two.lower()), two
    assert "2097154 bytes" in three and "1048576-byte result limit" in three, three
    assert len(counted_failures(home, "val1")) == 3


# --- imports relative to flows/ --------------------------------------------------------------------


def test_imports_are_relative_to_the_flows_folder(home):
    write_module(home, "helpers.py", """
        def shout(text):
            return text.upper() + "!"
    """)
    write_module(home, "greet.py", """
        import helpers                      # a sibling module in flows/

        def hello(name):
            return helpers.shout(f"hello {name}")
    """)
    write_module(home, "lib/text/words.py", """
        from lib.text import counting      # a namespace package (no __init__.py), absolute from flows/

        def count(sentence):
            return counting.words(sentence)
    """)
    write_module(home, "lib/text/counting.py", """
        def words(sentence):
            return len(sentence.split())
    """)
    write_module(home, "shop/__init__.py", "")
    write_module(home, "shop/orders/__init__.py", "")
    write_module(home, "shop/orders/totals.py", """
        from .rates import VAT             # a relative import inside a regular package

        def gross(net):
            return round(net * (1 + VAT), 2)
    """)
    write_module(home, "shop/orders/rates.py", "VAT = 0.25\n")
    write_flow(home, "Imports", """flow Imports
  step greet:
    call greet.hello(name="ann")
  step words:
    call lib.text.words.count(sentence="one two three")
  step gross:
    call shop.orders.totals.gross(net=10)
  return [greet.result, words.result, gross.result]
""")
    run_ok(home, "Imports", "--id", "imp1")
    assert lf_json(home, "inspect", "imp1")["result"] == ["HELLO ANN!", 3, 12.5]
    assert {e["step"]: e["call"]["target"] for e in events(home, "imp1", "ActivityScheduled")} == \
        {"greet": "greet:hello", "words": "lib.text.words:count", "gross": "shop.orders.totals:gross"}


def test_an_import_failure_is_a_spawn_error(home):
    write_module(home, "broken.py", "raise ImportError('the module refuses to load')\n")
    write_flow(home, "Broken", """flow Broken
  step one:
    call broken.fn()
    catch:
      set e = error
  step two:
    call nosuch.module.fn()
    catch:
      set f = error
  return [e, f]
""")
    run_ok(home, "Broken", "--id", "brk1")
    first, second = lf_json(home, "inspect", "brk1")["result"]
    assert first["kind"] == "spawn" and "could not import broken.fn: ImportError: the module refuses to load" \
        in first["message"]
    assert second["kind"] == "spawn" and "could not import nosuch.module.fn: ModuleNotFoundError" \
        in second["message"]
    assert "the module refuses to load" in log(home, "brk1", "one.1.err")


# --- under a real supervisor: timeout, cancel, a killed worker, a killed supervisor ----------------


def test_a_timeout_kills_the_worker_and_the_pool_starts_another(home, supervisor):
    write_module(home, "fns.py", FNS)
    write_flow(home, "Slow", """flow Slow
  step slow:
    call fns.nap(seconds=30, pidfile="slow.pid")
    timeout 1s
    catch timeout:
      set timed_out = error.message
  step after:
    call fns.pid()
  return {"timed_out": timed_out, "after": after.result}
""")
    sup = supervisor("--workers", "1", "--grace", "1")
    assert lf(home, "start", "Slow", "--id", "slow1").returncode == 0
    wait_for(lambda: workflow_status(home, "slow1") != "running", timeout=20, what="slow1 finished")
    details = lf_json(home, "inspect", "slow1")
    assert details["status"] == "completed", (details, sup.output())
    assert details["result"]["timed_out"] == "timed out after 1s"
    [slow_pid] = pids_in(home / "slow.pid")  # (the worker's cwd is the home)
    after_pid = details["result"]["after"]
    assert after_pid != slow_pid, "the call after the timeout ran on a new worker"
    assert not alive(slow_pid), "the timed-out call's worker was killed"
    failed = events(home, "slow1", "ActivityFailed")
    assert [(f["step"], f["error"]["kind"]) for f in failed] == [("slow", "timeout")]
    assert failed[0]["duration_ms"] < 5000


def test_cancel_kills_the_calls_worker(home, supervisor):
    write_module(home, "fns.py", FNS)
    write_flow(home, "Long", """flow Long
  step long:
    call fns.nap(seconds=60, pidfile="long.pid")
  return long.result
""")
    supervisor("--workers", "1", "--grace", "1")
    assert lf(home, "start", "Long", "--id", "long1").returncode == 0
    [pid] = wait_for(lambda: pids_in(home / "long.pid"), what="long1's call started")
    assert alive(pid)
    done = lf(home, "cancel", "long1")
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: lf_json(home, "inspect", "long1")["status"] == "cancelled", timeout=15, what="cancelled")
    wait_for(lambda: not alive(pid), timeout=5, what="the worker killed")
    failed = events(home, "long1", "ActivityFailed")
    assert len(failed) == 1 and failed[0]["error"]["kind"] == "cancelled", failed
    assert failed[0]["duration_ms"] < 10_000


def test_a_worker_killed_mid_call_is_a_counted_failure_and_the_retry_completes(home, supervisor):
    write_module(home, "fns.py", FNS)
    write_flow(home, "Victim", """flow Victim
  step victim:
    call fns.sleepy_first(seconds=60, pidfile="victim.pid")
    retry 1 every 1s
  return victim.result
""")
    supervisor("--workers", "1", "--grace", "1")
    assert lf(home, "start", "Victim", "--id", "vic1").returncode == 0
    [pid] = wait_for(lambda: pids_in(home / "victim.pid"), what="vic1's call started")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: workflow_status(home, "vic1") == "completed", timeout=15, what="vic1 completed")
    failed = events(home, "vic1", "ActivityFailed")
    assert len(failed) == 1
    assert (failed[0]["error"]["kind"], failed[0]["error"]["type"]) == ("exit", "WorkerDied")
    assert "killed by signal 9" in failed[0]["error"]["message"]
    result = lf_json(home, "inspect", "vic1")["result"]
    assert result["attempt"] == 2 and result["pid"] != pid
    assert [r["attempt"] for r in events(home, "vic1", "ActivityCompleted")] == [2]
    assert [t["purpose"] for t in events(home, "vic1", "TimerStarted")] == ["retry-2"], "counted: a retry"


def test_a_call_that_always_kills_its_worker_uses_up_its_retries_and_fails(home):
    write_module(home, "fns.py", FNS + "\n\n    def die():\n        os._exit(3)\n")
    write_flow(home, "Die", "flow Die\n  step die:\n    call fns.die()\n    retry 1 every 1s\n  return 1\n")
    done = lf(home, "run", "Die", "--id", "die1", timeout=60)
    assert done.returncode == 1 and "WorkerDied" not in done.stderr
    failed = events(home, "die1", "ActivityFailed")
    assert [(f["attempt"], f["error"]["type"], f["error"]["exit_code"]) for f in failed] == [
        (1, "WorkerDied", 3), (2, "WorkerDied", 3)]


def test_kill9_of_the_supervisor_mid_call_then_restart_completes_every_step_once(home, supervisor):
    write_module(home, "fns.py", FNS)
    mark = home / "marks.txt"
    write_flow(home, "Crash", f"""flow Crash
  step first:
    call fns.nap(seconds=2, mark={json.dumps(str(mark))}, pidfile="first.pid")
  step second:
    call fns.nap(seconds=0, mark={json.dumps(str(mark))})
  return [first.result, second.result]
""")
    sup = supervisor("--workers", "2", "--grace", "1")
    assert lf(home, "start", "Crash", "--id", "crash1").returncode == 0
    [pid] = wait_for(lambda: pids_in(home / "first.pid"), what="crash1's first call started")
    workers = children_of(sup.process.pid)
    assert pid in workers and len(workers) == 2, workers
    sup.stop(signal.SIGKILL)
    wait_for(lambda: not any(alive(p) for p in workers), timeout=5,
             what="the old supervisor's workers to die with it (PR_SET_PDEATHSIG)")

    supervisor("--workers", "2", "--grace", "1")
    wait_for(lambda: workflow_status(home, "crash1") == "completed", timeout=20, what="crash1 completed")
    records = history_records(home, "crash1")
    assert Counter(r["step"] for r in records if r["type"] == "ActivityCompleted") == {"first": 1, "second": 1}
    # the cut-off call is run again (as an "interrupted" attempt 2, or as attempt 1 again when its start
    # was never recorded); nothing else failed
    assert all(f["error"]["kind"] == "interrupted" for f in records if f["type"] == "ActivityFailed")
    lines = mark.read_text().splitlines()
    assert Counter(line for line in lines if line.startswith("done")) == {"done first": 1, "done second": 1}
    assert sum(line.startswith("start first") for line in lines) == 2, lines
    assert sum(line.startswith("start second") for line in lines) == 1, lines
    assert not any(alive(p) for p in workers)


def test_a_call_holding_the_gil_still_dies_with_a_killed_supervisor(home, supervisor):
    """The lifeline thread cannot run while a call holds the GIL in C code: PR_SET_PDEATHSIG, set for
    the one thread that starts every worker, ends the worker anyway (found by review)."""
    write_module(home, "fns.py", FNS + "\n\n    def busy(pidfile):\n        note_pid(pidfile)\n"
                 "        return sum(range(4 * 10 ** 9))  # one C call: minutes, holding the GIL\n")
    write_flow(home, "Busy", 'flow Busy\n  step busy:\n    call fns.busy(pidfile="busy.pid")\n  return 1\n')
    sup = supervisor("--workers", "1", "--grace", "1")
    assert lf(home, "start", "Busy", "--id", "busy1").returncode == 0
    [pid] = wait_for(lambda: pids_in(home / "busy.pid"), what="the busy call started")
    time.sleep(0.3)  # well inside sum()
    sup.stop(signal.SIGKILL)
    wait_for(lambda: not alive(pid), timeout=5, what="the busy worker to die with its supervisor")


# --- the shipped example and docs/activities.md ----------------------------------------------------


def test_the_python_step_example_runs(home):
    done = run_ok(home, "PythonStep", "--id", "ex1")
    assert lf_json(home, "inspect", "ex1")["result"] == {"total": 3.5, "currency": "EUR", "lines": 2}
    assert log(home, "ex1", "quote.1.out") == "pricing 2 items for ex1, attempt 1\n"
    assert "completed" in done.stdout

    done = lf(home, "run", "PythonStep", "--id", "ex2", "--input", '{"items": {"kiwi": 1}}')
    assert done.returncode == 1
    assert lf_json(home, "inspect", "ex2")["error"]["message"] == \
        "cannot quote this order: UnknownItem: no price for 'kiwi'"


DOC = REPO / "docs" / "activities.md"
SHIPPED = ["flows/examples/PythonStep.flow", "flows/examples/pysteps/pricing.py", "flows/examples/pysteps/catalog.py"]


def _blocks(text):
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def test_the_docs_show_the_shipped_example_files_verbatim():
    text = DOC.read_text()
    shown = [body for _, body in _blocks(text)]
    for relative in SHIPPED:
        assert (REPO / relative).read_text() in shown, f"docs/activities.md does not show {relative} as it is"
        assert f"`{relative}`" in text


def test_every_flow_block_in_the_docs_parses():
    flows = [body for lang, body in _blocks(DOC.read_text()) if lang == "flow"]
    assert len(flows) >= 3
    for body in flows:
        assert parse_flow(body, "docs/activities.md").name


def test_the_docs_commands_give_the_results_they_show(home):
    text = DOC.read_text()
    commands = re.findall(r"^\$ (lf run PythonStep.*)$", text, flags=re.M)
    assert commands, "docs/activities.md shows no `$ lf run PythonStep` command"
    for command in commands:
        shown = re.search(re.escape(command) + r"\n(?:.*\n)*?.*completed -> (.*)\n", text)
        args = shlex.split(command)[2:]
        done = lf(home, "run", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        got = re.search(r"completed -> (.*)\n", done.stdout).group(1)
        assert shown and json.loads(shown.group(1)) == json.loads(got), (command, got)

