"""The drop folder (issue 6): identity, exactly-once, complete files only, hostile input and var/.

Real supervisors where the behaviour is the supervisor's (events, re-looks, rescans);
the DropFolder in-process, with a clock the test drives, where a test needs to stop the
world at a precise step (a crash) or to break var/ on purpose.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import history_records, lf, lf_json, wait_for, write_flow

from localflow import dsl
from localflow.engine import Engine
from localflow.supervisor.dropfolder import CLAIM_PREFIX, DropFolder

ECHO = 'flow Echo\n  input n = 0\n  step e:\n    run ["echo", "hi"]\n  return n\n'


def drop(home: Path, name: str, payload) -> Path:
    """Write a request the recommended way: under a temporary name, then rename it into place."""
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    target = home / "flows" / name
    tmp = target.with_name(name + ".tmp")
    tmp.write_bytes(payload)
    tmp.rename(target)
    return target


def requests(home: Path, outcome: str, errors: bool = False) -> list[Path]:
    folder = home / "var" / "requests" / outcome
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(".error") == errors)


def started_event(home: Path, workflow_id: str) -> dict:
    return history_records(home, workflow_id)[0]


def workflows(home: Path) -> list[str]:
    root = home / "var" / "workflows"
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


# --- in-process: a DropFolder on a real home, with a clock the test drives -------------


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def make_folder(home: Path, clock_ms: int | None = None) -> SimpleNamespace:
    clock = Clock(int(time.time() * 1000) if clock_ms is None else clock_ms)
    engine = Engine(home, clock=clock)
    engine.ensure_layout()
    logs: list[str] = []
    started: list[str] = []
    return SimpleNamespace(engine=engine, clock=clock, logs=logs, started=started,
                           drops=DropFolder(engine, logs.append, started.append))


def supervisor_pass(folder: SimpleNamespace, startup: bool = False) -> None:
    """What the supervisor does at start or at a rescan: finish claims, look at every file."""
    folder.drops.recover(startup)
    for path in sorted((folder.engine.paths.flows_dir).iterdir()):
        folder.drops.handle(path, start_new=not startup)
    for path, start_new in folder.drops.due():
        folder.drops.handle(path, start_new)


def old_file(path: Path, payload) -> Path:
    """A request written a while ago (in place): complete by the settle rule."""
    path.write_text(json.dumps(payload) if not isinstance(payload, str) else payload)
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


@pytest.fixture
def echo_home(home: Path) -> Path:
    write_flow(home, "Echo", ECHO)
    return home


# --- 1. identity: a new file is a new request; exactly once across a crash -------------


def test_the_same_request_dropped_again_after_leaving_done_starts_again_each_time(echo_home, supervisor):
    """Identity once came from (name, content, inode): a recycled inode made a new drop "already started"."""
    home = echo_home
    sup = supervisor()
    request = home / "flows" / "order.start.json"
    for attempt in range(10):
        drop(home, "order.start.json", {"flow": "Echo", "input": {"n": 1}})
        wait_for(lambda: not request.exists() and requests(home, "done"), what=f"drop {attempt} done")
        for path in requests(home, "done"):
            path.unlink()  # the user clears done/; the next identical drop is still a new request
    assert len(workflows(home)) == 10
    identities = {started_event(home, w)["request"]["identity"] for w in workflows(home)}
    assert len(identities) == 10
    assert requests(home, "rejected", errors=True) == []
    assert "already started" not in sup.output()


@pytest.mark.parametrize("across_filesystems", [False, True], ids=["same-fs", "var-on-other-fs"])
def test_a_crash_at_any_step_of_a_request_still_starts_it_exactly_once(tmp_path, monkeypatch, across_filesystems):
    """Stop the first supervisor before each filesystem step in turn; a second one finishes the job.

    With ``across_filesystems`` a rename from flows/ into var/ fails with EXDEV, as when var/
    is on another disk: the request is claimed by a hidden rename inside flows/ and copied.
    """

    class Crash(BaseException):
        pass

    steps = ("rename", "replace", "unlink", "fsync", "fchmod", "mkdir", "write")
    originals = {name: getattr(os, name) for name in steps}
    crash_points = 0
    for crash_at in range(1, 500):
        home = tmp_path / f"run-{crash_at}"
        write_flow(home, "Echo", ECHO)
        first = make_folder(home)
        flows_ino = os.stat(home / "flows").st_ino
        request = old_file(home / "flows" / "order.start.json", {"flow": "Echo", "input": {"n": 7}})
        state = {"calls": 0, "dead": False}

        def counting(name):
            real = originals[name]

            def step(*args, **kwargs):
                state["calls"] += 1
                if state["dead"] or state["calls"] == crash_at:
                    state["dead"] = True  # a crashed process does nothing more
                    raise Crash(name)
                if (name == "rename" and across_filesystems and kwargs.get("src_dir_fd") is not None
                        and os.fstat(kwargs["src_dir_fd"]).st_ino == flows_ino
                        and os.fstat(kwargs["dst_dir_fd"]).st_ino != flows_ino):
                    raise OSError(errno.EXDEV, "Invalid cross-device link")
                return real(*args, **kwargs)

            return step

        for name in steps:
            monkeypatch.setattr(os, name, counting(name))
        try:
            first.drops.handle(request)
        except Crash:
            pass
        finally:
            for name in steps:
                monkeypatch.setattr(os, name, originals[name])
        if not state["dead"]:
            break  # the request went through without reaching the crash point: every step was tried
        crash_points += 1

        second = make_folder(home)  # a new supervisor: nothing remembered
        supervisor_pass(second, startup=True)
        supervisor_pass(second)

        started = workflows(home)
        assert len(started) == 1, (crash_at, started)
        done = requests(home, "done")
        assert len(done) == 1 and requests(home, "rejected") == [], crash_at
        token = re.match(r"\d{8}-\d{6}-([0-9a-f]{16})-order\.start\.json$", done[0].name).group(1)
        assert started_event(home, started[0])["request"] == {"file": "order.start.json", "identity": token}
        assert started_event(home, started[0])["input"] == {"n": 7}
        assert sorted(p.name for p in (home / "flows").iterdir()) == ["Echo.flow"], crash_at
        assert list((home / "var/requests/taken").iterdir()) == [], crash_at
    assert crash_points >= 8  # claim, fsyncs, the workflow's creation, the move to done/ ...


def test_a_claimed_request_whose_workflow_exists_with_its_identity_is_finished_not_restarted(echo_home):
    """The supervisor crashed after starting the workflow and before moving the request: it is ours."""
    folder = make_folder(echo_home)
    token = "0123456789abcdef"
    workflow_id = folder.engine.start("Echo", {"n": 3}, f"Echo-req-{token[:12]}",
                                      request={"file": "x.start.json", "identity": token})
    taken = echo_home / "var/requests/taken"
    taken.mkdir(parents=True)
    (taken / f"20260101-000000-{token}-x.start.json").write_text(json.dumps({"flow": "Echo", "input": {"n": 3}}))

    supervisor_pass(folder, startup=True)

    assert workflows(echo_home) == [workflow_id] and folder.started == []
    assert [p.name for p in requests(echo_home, "done")] == [f"20260101-000000-{token}-x.start.json"]
    assert any("already started by this request" in line for line in folder.logs)


# --- 2. nothing a user dropped vanishes ------------------------------------------------------


def test_ten_requests_with_the_same_name_are_all_kept(echo_home, supervisor):
    home = echo_home
    supervisor()
    request = home / "flows" / "order.start.json"
    for n in range(10):
        drop(home, "order.start.json", {"flow": "Echo", "input": {"n": n}})
        wait_for(lambda: not request.exists(), what=f"request {n} taken")
    done = wait_for(lambda: len(requests(home, "done")) == 10 and requests(home, "done"), what="10 in done/")
    assert sorted(json.loads(p.read_text())["input"]["n"] for p in done) == list(range(10))
    assert all(p.name.endswith("-order.start.json") for p in done)
    assert sorted(started_event(home, w)["input"]["n"] for w in workflows(home)) == list(range(10))


def test_rejected_requests_with_the_same_name_are_all_kept_with_their_errors(echo_home):
    folder = make_folder(echo_home)
    for n in range(5):
        old_file(echo_home / "flows" / "bad.start.json", {"flow": f"Nope{n}"})
        supervisor_pass(folder, startup=True)
    rejected = requests(echo_home, "rejected")
    assert len(rejected) == 5
    for path in rejected:
        error = Path(f"{path}.error").read_text()
        assert f"unknown flow '{json.loads(path.read_text())['flow']}'" in error


# --- 3. only complete files --------------------------------------------------------------------

TWO_FIRST = 'flow Two\n  step a:\n    run ["echo", "first-half"]\n'
TWO_SECOND = '  step b:\n    run ["echo", "second-half"]\n  return b.result\n'


def test_a_flow_written_in_two_parts_starts_once_from_the_whole_file(home, supervisor):
    dsl.parse_flow(TWO_FIRST, "Two.flow")  # the first half alone is a valid flow: the trap
    sup = supervisor("--rescan", "60")  # no rescan to the rescue: the settle re-look must wake the loop
    with open(home / "flows" / "Two.flow", "w") as handle:
        handle.write(TWO_FIRST)
        handle.flush()
        time.sleep(1.5)
        handle.write(TWO_SECOND)
    rows = wait_for(lambda: [r for r in lf_json(home, "list") if r["flow"] == "Two" and r["status"] == "completed"],
                    timeout=20, what="Two completed")
    time.sleep(2.5)  # a second start, had the first half been taken, would have happened by now
    assert [r["flow"] for r in lf_json(home, "list")] == ["Two"]
    steps = [r["step"] for r in history_records(home, rows[0]["id"]) if r["type"] == "ActivityCompleted"]
    assert steps == ["a", "b"]
    assert "does not parse" not in sup.output()


def test_a_request_rewritten_in_place_starts_with_its_final_content(echo_home, supervisor):
    home = echo_home
    supervisor("--rescan", "60")
    request = home / "flows" / "r.start.json"
    request.write_text(json.dumps({"flow": "Echo", "input": {"n": 1}}))  # in place: no rename
    time.sleep(1.0)
    request.write_text(json.dumps({"flow": "Echo", "input": {"n": 2}}))
    wait_for(lambda: requests(home, "done"), timeout=20, what="request done")
    time.sleep(0.5)
    assert [started_event(home, w)["input"] for w in workflows(home)] == [{"n": 2}]


def test_a_request_renamed_into_flows_is_taken_at_once_and_one_written_in_place_after_settling(echo_home):
    folder = make_folder(echo_home)
    renamed = drop(echo_home, "a.start.json", {"flow": "Echo"})
    folder.clock.ms = os.stat(renamed).st_mtime_ns // 1_000_000  # not a millisecond old
    folder.drops.note_arrival(renamed)  # what the watcher reports for a moved event
    folder.drops.handle(renamed)
    assert not renamed.exists() and len(requests(echo_home, "done")) == 1

    in_place = echo_home / "flows" / "b.start.json"
    in_place.write_text(json.dumps({"flow": "Echo"}))
    mtime_ms = os.stat(in_place).st_mtime_ns // 1_000_000
    folder.clock.ms = mtime_ms + 1000
    folder.drops.handle(in_place)
    assert in_place.exists() and folder.drops.next_look() == mtime_ms + 2000
    assert folder.drops.due() == []
    folder.clock.ms = mtime_ms + 2000
    assert folder.drops.due() == [(in_place, True)]
    folder.drops.handle(in_place)
    assert not in_place.exists() and len(requests(echo_home, "done")) == 2

    again = drop(echo_home, "c.start.json", {"flow": "Echo"})
    folder.drops.note_arrival(again)
    with open(again, "a") as handle:  # written to after it was renamed in: no longer "arrived whole"
        handle.write("\n")
    folder.clock.ms = os.stat(again).st_mtime_ns // 1_000_000
    folder.drops.handle(again)
    assert again.exists()


def test_time_in_the_drop_folder_comes_from_the_engine_clock(echo_home):
    folder = make_folder(echo_home, clock_ms=1_000_000_000_000)  # 2001-09-09, long before the file's mtime
    request = echo_home / "flows" / "r.start.json"
    request.write_text(json.dumps({"flow": "Echo"}))
    folder.drops.handle(request)
    assert request.exists()  # first seen now (by this clock), not yet settled
    folder.clock.ms += 1999
    folder.drops.handle(request)
    assert request.exists()
    folder.clock.ms += 1
    folder.drops.handle(request)
    done = requests(echo_home, "done")
    assert [p.name[:16] for p in done] == ["20010909-014642-"]
    assert started_event(echo_home, workflows(echo_home)[0])["ts"] == "2001-09-09T01:46:42.000Z"


# --- 4. requests that can never start are rejected, once -----------------------------------------

UNSTARTABLE = {
    "nan.start.json": b'{"flow": "Echo", "input": {"n": NaN}}',
    "infinity.start.json": b'{"flow": "Echo", "input": {"n": Infinity}}',
    "huge.start.json": b'{"flow": "Echo", "input": {"n": 1e999}}',
    "deep.start.json": b'{"flow": "Echo", "input": {"n": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}",
    "surrogate.start.json": b'{"flow": "Echo", "input": {"n": "\\ud800"}}',
    "latin1.start.json": b'{"flow": "Echo", "input": {"n": "caf\xe9"}}',
}


def test_requests_that_can_never_start_are_rejected_once_not_retried_forever(echo_home, supervisor):
    home = echo_home
    sup = supervisor()
    for name, payload in UNSTARTABLE.items():
        drop(home, name, payload)
    errors = wait_for(lambda: len(requests(home, "rejected", errors=True)) == len(UNSTARTABLE)
                      and requests(home, "rejected", errors=True), what="all rejected")
    time.sleep(2.5)  # two rescans: nothing is tried again
    assert sorted(p.name for p in (home / "flows").iterdir() if p.name.endswith(".start.json")) == []
    assert workflows(home) == []
    text = {p.name.split("-", 3)[3][: -len(".error")]: p.read_text() for p in errors}
    assert "NaN" in text["nan.start.json"] and "Infinity" in text["infinity.start.json"]
    assert "1e999" in text["huge.start.json"] and "nested more than" in text["deep.start.json"]
    assert "not valid Unicode" in text["surrogate.start.json"] and "not UTF-8" in text["latin1.start.json"]
    output = sup.output()
    for name in UNSTARTABLE:
        assert sum(name in line for line in output.splitlines()) == 1, name


@pytest.mark.parametrize("across_filesystems", [False, True], ids=["same-fs", "var-on-other-fs"])
def test_an_oversized_request_is_rejected_and_kept_whole(echo_home, monkeypatch, across_filesystems):
    from localflow.core.jsonvalue import MAX_EVENT_BYTES

    folder = make_folder(echo_home)
    flows_ino = os.stat(echo_home / "flows").st_ino
    real_rename = os.rename

    def rename(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        if (across_filesystems and src_dir_fd is not None and os.fstat(src_dir_fd).st_ino == flows_ino
                and os.fstat(dst_dir_fd).st_ino != flows_ino):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    monkeypatch.setattr(os, "rename", rename)
    payload = json.dumps({"flow": "Echo", "input": {"n": "x" * (MAX_EVENT_BYTES + 10)}})
    old_file(echo_home / "flows" / "big.start.json", payload)
    supervisor_pass(folder, startup=True)
    rejected = requests(echo_home, "rejected")
    assert len(rejected) == 1 and rejected[0].read_text() == payload
    assert "larger than" in Path(f"{rejected[0]}.error").read_text()
    assert [p.name for p in (echo_home / "flows").iterdir()
            if p.name.endswith(".start.json") or p.name.startswith(".")] == []


# --- 5. an id held by another workflow ----------------------------------------------------------


def test_a_request_for_an_id_held_by_another_workflow_is_rejected_naming_it(echo_home, supervisor):
    home = echo_home
    supervisor()
    assert lf(home, "start", "Echo", "--id", "held").returncode == 0
    drop(home, "dup.start.json", {"flow": "PurchaseFlow", "id": "held", "input": {"order_id": "x", "amount": 1}})
    errors = wait_for(lambda: requests(home, "rejected", errors=True), what="rejected")
    error = errors[0].read_text()
    assert "workflow held already exists" in error and "flow Echo" in error
    assert re.search(r"status (running|completed)", error)
    assert requests(home, "done") == []
    assert started_event(home, "held")["flow_name"] == "Echo"


# --- 6. a request names a flow, never a path -----------------------------------------------------


def test_a_request_naming_a_path_is_rejected_without_reading_or_running_it(echo_home, supervisor, tmp_path):
    home = echo_home
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    marker = outside / "evil-ran"
    (outside / "Evil.flow").write_text(f'flow Evil\n  step x:\n    run ["touch", "{marker}"]\n')
    sup = supervisor()
    named = {
        "abs-secret.start.json": {"flow": str(secret)},
        "rel-secret.start.json": {"flow": "../outside/secret.txt"},
        "passwd.start.json": {"flow": "/etc/passwd"},
        "hostname.start.json": {"flow": "../../../../../../etc/hostname"},
        "rel-flow.start.json": {"flow": "../outside/Evil.flow", "id": "evil-1"},  # a valid id: nothing else stops it
        "abs-flow.start.json": {"flow": str(outside / "Evil.flow"), "id": "evil-2"},
        "no-id.start.json": {"flow": "../outside/Evil.flow"},
    }
    for name, request in named.items():
        drop(home, name, request)
    errors = wait_for(lambda: len(requests(home, "rejected", errors=True)) == len(named)
                      and requests(home, "rejected", errors=True), what="all rejected")
    for error in errors:
        text = error.read_text()
        assert "a request names a flow, not a path" in text, text
        assert "TOP-SECRET" not in text and "root:" not in text and "touch" not in text
    output = sup.output()
    assert "TOP-SECRET" not in output and "root:x" not in output
    assert workflows(home) == [] and not marker.exists()


# --- 7. private files under any umask --------------------------------------------------------


def test_request_and_registry_files_are_private_even_under_umask_000(echo_home, supervisor):
    home = echo_home
    old = os.umask(0)
    try:
        (home / "var" / "requests").mkdir(parents=True, mode=0o777)  # as an older LocalFlow left it
        drop(home, "good.start.json", {"flow": "Echo"})
        drop(home, "bad.start.json", {"flow": "Nope"})
        assert stat.S_IMODE(os.stat(home / "flows" / "good.start.json").st_mode) == 0o666
        sup = supervisor()
        write_flow(home, "Fresh", 'flow Fresh\n  step x:\n    run ["true"]\n')
        wait_for(lambda: requests(home, "done") and requests(home, "rejected"), what="requests handled")
        wait_for(lambda: "new flow Fresh" in sup.output(), what="Fresh registered")
    finally:
        os.umask(old)
    var = home / "var"
    for directory in ("requests", "requests/taken", "requests/done", "requests/rejected", "registry"):
        assert stat.S_IMODE(os.stat(var / directory).st_mode) == 0o700, directory
    files = [*requests(home, "done"), *requests(home, "rejected"), *requests(home, "rejected", errors=True),
             *(var / "registry").iterdir()]
    assert len(files) >= 5
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


# --- 8, 9. never through a symlink inside var/ ---------------------------------------------------


@pytest.mark.parametrize("linked", ["requests", "requests/taken", "requests/done", "requests/rejected"])
def test_a_symlinked_request_dir_receives_nothing(echo_home, tmp_path, linked):
    home = echo_home
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = make_folder(home)
    (home / "var" / "requests").mkdir(exist_ok=linked != "requests")
    link = home / "var" / linked
    if link.exists():
        link.rmdir()
    os.symlink(outside, link)
    old_file(home / "flows" / "good.start.json", {"flow": "Echo"})
    old_file(home / "flows" / "bad.start.json", {"flow": "Nope"})

    supervisor_pass(folder, startup=True)
    supervisor_pass(folder)  # a rescan: the same refusal is not logged again

    assert list(outside.iterdir()) == []
    refusals = [line for line in folder.logs if f"refusing {link}" in line]
    assert refusals and len(refusals) == len(set(refusals)), folder.logs
    left_in_flows = sorted(p.name for p in (home / "flows").iterdir() if p.name.endswith(".start.json"))
    taken = home / "var/requests/taken"
    left_taken = sorted(p.name.split("-", 3)[3] for p in taken.iterdir()) if linked != "requests" \
        and not taken.is_symlink() else []
    if linked in ("requests", "requests/taken"):
        assert left_in_flows == ["bad.start.json", "good.start.json"] and workflows(home) == []
    elif linked == "requests/done":
        assert left_taken == ["good.start.json"] and len(workflows(home)) == 1  # started; its move waits
        assert len(requests(home, "rejected")) == 1
    else:
        assert left_taken == ["bad.start.json"] and len(requests(home, "done")) == 1

    link.unlink()  # the user fixes var/: the next rescan finishes everything, starting nothing twice
    supervisor_pass(folder)
    assert len(requests(home, "done")) == 1 and len(requests(home, "rejected")) == 1
    assert len(workflows(home)) == 1


def test_the_registry_is_never_written_or_read_through_a_symlink(home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = make_folder(home)
    os.symlink(outside, home / "var" / "registry")
    hello = write_flow(home, "Hello", 'flow Hello\n  step x:\n    run ["true"]\n')
    os.utime(hello, (time.time() - 60, time.time() - 60))
    folder.drops.handle(hello)
    assert list(outside.iterdir()) == [] and workflows(home) == []
    assert any(f"refusing {home / 'var' / 'registry'}" in line for line in folder.logs), folder.logs

    (home / "var" / "registry").unlink()
    (home / "var" / "registry").mkdir()
    record = outside / "Hello.json"
    record.write_text(json.dumps({"flow": "Hello", "flow_hash": "x"}))
    os.symlink(record, home / "var" / "registry" / "Hello.json")
    folder.drops.handle(hello)
    assert record.read_text() == json.dumps({"flow": "Hello", "flow_hash": "x"}) and workflows(home) == []
    assert any("refusing" in line and "Hello.json" in line for line in folder.logs), folder.logs


def test_a_hidden_claim_left_in_flows_by_a_crash_is_finished(echo_home):
    """var/ on another filesystem: a crash after the hidden claim and before the copy into var/."""
    token = "fedcba9876543210"
    hidden = echo_home / "flows" / f"{CLAIM_PREFIX}20260101-000000-{token}-x.start.json"
    hidden.write_text(json.dumps({"flow": "Echo", "input": {"n": 5}}))
    folder = make_folder(echo_home)
    supervisor_pass(folder, startup=True)
    assert not hidden.exists()
    assert [p.name for p in requests(echo_home, "done")] == [f"20260101-000000-{token}-x.start.json"]
    assert [started_event(echo_home, w)["request"]["identity"] for w in workflows(echo_home)] == [token]
