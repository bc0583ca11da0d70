"""Hostile ``*.start.json`` requests dropped into flows/ (supervisor/dropfolder.py).

What the drop folder documents, held for any file: a complete request is *claimed* and ends in
var/requests/done/ (it started exactly one workflow, whose WorkflowStarted names it) or in
var/requests/rejected/ beside a ``.error`` file saying why (it started nothing); either way byte for
byte what was dropped, so a request never silently disappears. A symlink, a directory or a FIFO is
never taken (left where it is, its target untouched). A file still being written in place is not
taken before it settled, then it is taken with its final content. Nothing outside the home changes,
and no half-made workflow is left (the workflows are exactly those of done/).

Most examples drive a DropFolder in-process on a real home, with a clock the test moves (as
test_dropfolder_requests.py does); one test drops a batch of every class into a real `lf supervise`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import SupervisorProcess, wait_for
from test_fuzz_entry_points import (HOSTILE_JSON, TRACEBACK, World, _json_values, deep, fuzz_settings,
                                    hostile_text)

from localflow.core.jsonvalue import MAX_DEPTH, MAX_EVENT_BYTES
from localflow.engine import Engine
from localflow.supervisor.dropfolder import _SETTLE_S, REQUEST_SUFFIX, DropFolder, _shown, _short

ECHO = 'flow Echo\n  input n = 0\n  input s = ""\n  step e:\n    run ["echo", "hi"]\n  return n\n'
CLAIMED = re.compile(r"^\d{8}-\d{6}-([0-9a-f]{16})-(.+)$", re.DOTALL)
COUNTS: dict[str, int] = {}  # classes of request tried (printed by the report test at the end)


class Clock:
    def __init__(self) -> None:
        self.ms = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.ms


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    w = World(tmp_path_factory.mktemp("fuzz-drop"), {"Echo": ECHO})
    engine = Engine(w.home)
    engine.ensure_layout()
    engine.start("Echo", {}, "taken-id")  # an id a request may ask for: rejected, naming it
    past = time.time() - 60
    os.utime(w.home / "flows" / "Echo.flow", (past, past))
    _folder(w).drops.handle(w.home / "flows" / "Echo.flow", start_new=False)  # registered, as at a start-up
    assert (w.home / "var" / "registry" / "Echo.json").is_file()
    return w


def _folder(world: World) -> SimpleNamespace:
    clock = Clock()
    engine = Engine(world.home, clock=clock)
    logs: list[str] = []
    started: list[str] = []
    return SimpleNamespace(engine=engine, clock=clock, logs=logs, started=started,
                           drops=DropFolder(engine, logs.append, started.append))


def _pass(folder: SimpleNamespace) -> None:
    """A supervisor's rescan: finish claims, look at every entry of flows/, then what is due."""
    folder.drops.recover()
    for path in sorted(folder.engine.paths.flows_dir.iterdir()):
        folder.drops.handle(path)
    for path, start_new in folder.drops.due():
        folder.drops.handle(path, start_new)


def _workflows(world: World) -> set[str]:
    return {n for n in world.workflow_entries() if not n.startswith(".")}


def _outcomes(world: World) -> dict[str, tuple[str, str, bytes, Path]]:
    """Dropped name -> (outcome, token, bytes, path) of every request in done/, rejected/ and taken/."""
    return {name: found[0] for name, found in _kept(world).items()}


def _kept(world: World) -> dict[str, list[tuple[str, str, bytes, Path]]]:
    """Kept name (the dropped one, cut to fit) -> every request kept under it, as in ``_outcomes``."""
    found: dict[str, list] = {}
    for outcome in ("done", "rejected", "taken"):
        folder = world.home / "var" / "requests" / outcome
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.name.endswith(".error"):
                continue
            match = CLAIMED.match(path.name)
            assert match, f"a stray name in {outcome}/: {path.name!r}"
            found.setdefault(match.group(2), []).append((outcome, match.group(1), path.read_bytes(), path))
    return found


def _first_event(world: World, workflow_id: str) -> dict:
    path = world.home / "var" / "workflows" / workflow_id / "history.jsonl"
    return json.loads(path.read_bytes().split(b"\n", 1)[0])


def _reset(world: World, before: set[str]) -> None:
    for workflow_id in _workflows(world) - before:
        shutil.rmtree(world.home / "var" / "workflows" / workflow_id)
    shutil.rmtree(world.home / "var" / "requests", ignore_errors=True)
    for path in (world.home / "flows").iterdir():
        if path.name != "Echo.flow":
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


# --- what may be dropped ----------------------------------------------------------------------------------

_NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")
names = st.one_of(
    st.just("order"),
    st.text(_NAME_CHARS, min_size=1, max_size=30).filter(lambda n: not n.startswith(".")),
    st.binary(min_size=1, max_size=20).filter(lambda b: b"/" not in b and b"\x00" not in b
                                               and not b.startswith(b".")).map(os.fsdecode),  # not UTF-8
    st.integers(100, 255 - len(REQUEST_SUFFIX)).map(lambda n: "n" * n),  # up to NAME_MAX with the suffix
    st.sampled_from(["-rf", "*", "a b", "x\ny", "\x1b[2J", "\u202e", "名前", "😀" * 50, "order.flow"]),
)

flows = st.one_of(st.just("Echo"), hostile_text, st.sampled_from(["../Echo", "Echo.flow", "flows/Echo", "echo", "/dev/zero"]),
                  st.integers(), st.none(), st.lists(st.just("Echo"), max_size=2), st.booleans())
inputs = st.one_of(
    st.fixed_dictionaries({}, optional={"n": _json_values(), "s": hostile_text}),
    st.dictionaries(hostile_text, _json_values(), max_size=2),
    _json_values(),
    st.just({"n": {"$secret": "X"}}), st.just({"s": "secret:X"}),
)
ids = st.one_of(st.none(), st.just("taken-id"), st.uuids().map(lambda u: f"req-{u.hex[:12]}"), hostile_text,
                st.integers(), st.lists(st.just("x"), max_size=1), st.just(""))


@st.composite
def request_documents(draw) -> tuple[str, bytes]:
    """(class, bytes) of one request."""
    kind = draw(st.sampled_from(["request", "request", "request", "json", "bytes", "deep", "text", "special"]))
    if kind == "request":
        doc = {}
        for key, strategy in (("flow", flows), ("input", inputs), ("id", ids)):
            if draw(st.integers(0, 5)):
                doc[key] = draw(strategy)
        if draw(st.integers(0, 9)) == 0:
            doc[draw(hostile_text)] = draw(_json_values())
        ensure_ascii = draw(st.booleans())
        try:
            text = json.dumps(doc, ensure_ascii=ensure_ascii, allow_nan=True)
        except (ValueError, UnicodeEncodeError):
            text = json.dumps(doc, ensure_ascii=True, allow_nan=True)
        return "request", text.encode("utf-8", "surrogatepass")
    if kind == "json":
        return "hostile JSON", draw(st.sampled_from(HOSTILE_JSON)).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return "random bytes", draw(st.binary(max_size=200))
    if kind == "deep":
        levels = draw(st.integers(MAX_DEPTH - 2, 10_000))
        return "deep JSON", ('{"flow": "Echo", "input": {"n": ' + deep(levels) + "}}").encode()
    if kind == "text":
        return "random text", draw(st.text(st.characters(blacklist_categories=()), max_size=100)).encode(
            "utf-8", "surrogatepass")
    return "special", draw(st.sampled_from([
        b"", b"\xef\xbb\xbf" + json.dumps({"flow": "Echo"}).encode(), b'{"flow": "Echo"}\x00',
        b'{"flow": "Echo", "input": {"s": "\xff"}}', b'{"flow": "Echo"}{"flow": "Echo"}', b"\n" * 1000,
        json.dumps({"flow": "Echo", "input": {"s": "x" * 1000}, "id": "a" * 129}).encode(),
        json.dumps({"flow": "Echo", "input": {"n": 10 ** 4001}}).encode(),
        json.dumps({"flow": "Echo", "flow2": "x", "input": None}).encode(),
        json.dumps({"flow": "Echo", "input": {"n": float("nan")}}).encode(),
    ]))


entries = st.tuples(names, st.sampled_from(["file"] * 12 + ["symlink-file", "symlink-dir", "dangling", "dir", "fifo"]),
                    request_documents())


def _plant(world: World, path: Path, kind: str, data: bytes) -> None:
    if kind == "file":
        path.write_bytes(data)
        past = time.time() - 60  # written a while ago: complete by the settle rule
        os.utime(path, (past, past))
    elif kind == "symlink-file":
        os.symlink(world.outside / "secret.txt", path)
    elif kind == "symlink-dir":
        os.symlink(world.outside / "victim", path)
    elif kind == "dangling":
        os.symlink(world.outside / "nothing-here", path)
    elif kind == "dir":
        path.mkdir()
        (path / "inner.start.json").write_bytes(data)
    else:
        os.mkfifo(path)


@fuzz_settings(150)
@given(batch=st.lists(entries, min_size=1, max_size=4, unique_by=lambda e: e[0]))
def test_every_dropped_request_ends_done_or_rejected_whole(world, batch):
    before = _workflows(world)
    folder = _folder(world)
    dropped = {}
    try:
        for name, kind, (what, data) in batch:
            file_name = name + REQUEST_SUFFIX
            if len(os.fsencode(file_name)) > 255:
                file_name = os.fsdecode(os.fsencode(file_name)[:255 - len(REQUEST_SUFFIX)]) + REQUEST_SUFFIX
            _plant(world, world.home / "flows" / file_name, kind, data)
            dropped[file_name] = (kind, data)
            COUNTS[f"{kind}: {what}" if kind == "file" else kind] = COUNTS.get(
                f"{kind}: {what}" if kind == "file" else kind, 0) + 1
        _pass(folder)
        _pass(folder)  # a second rescan changes nothing

        kept = _kept(world)
        started = _workflows(world) - before
        done = []
        for file_name, (kind, data) in dropped.items():
            path = world.home / "flows" / file_name
            if kind != "file":
                assert os.path.lexists(path), f"{kind} {file_name!r} vanished"
                continue
            assert not os.path.lexists(path), f"{file_name!r} was not taken; log: {folder.logs}"
            short = _short(file_name)  # two long names may be cut to the same: both are kept
            mine = [k for k in kept.get(short, []) if k[2] == data]
            assert mine, f"{file_name!r} disappeared (or was changed): {sorted(kept)}; log: {folder.logs}"
            outcome, token, _, where = mine[0]
            kept[short].remove(mine[0])
            assert outcome in ("done", "rejected"), f"{file_name!r} stuck in {outcome}/; log: {folder.logs}"
            if outcome == "rejected":
                error = Path(f"{where}.error")
                assert error.is_file() and error.read_text().strip(), f"no reason for rejecting {file_name!r}"
                assert any(line.startswith(f"rejected {_shown(short)}") for line in folder.logs), folder.logs
            else:
                done.append(token)
                ours = [w for w in started if (_first_event(world, w).get("request") or {}).get("identity") == token]
                assert len(ours) == 1, f"{file_name!r} is done but started {ours}"
                assert _first_event(world, ours[0])["request"]["file"] == _shown(short)
        assert len(started) == len(done), f"workflows {sorted(started)} for done requests {done}"
        assert not [n for n in world.workflow_entries() if n.startswith(".")], "a staging directory was left"
        assert not any(TRACEBACK in line for line in folder.logs)
        world.assert_outside_untouched(batch)
    finally:
        _reset(world, before)


@fuzz_settings(40)
@given(cut=st.floats(0.0, 1.0),  # each input of the kind its default gives it (core/inputs.py)
       input_=st.fixed_dictionaries({}, optional={"n": st.integers(), "s": st.text(max_size=50)}),
       renamed=st.booleans())
def test_a_request_still_being_written_is_taken_only_once_settled_with_its_final_content(world, cut, input_, renamed):
    before = _workflows(world)
    folder = _folder(world)
    path = world.home / "flows" / "slow.start.json"
    data = json.dumps({"flow": "Echo", "input": input_}).encode()
    try:
        path.write_bytes(data[: int(len(data) * cut)])  # the writer has written this much so far
        _pass(folder)
        assert path.exists() and not _outcomes(world), "a file being written was taken"
        folder.clock.ms += int(_SETTLE_S * 1000) // 2
        with open(path, "ab") as handle:  # more arrives; the file is not settled yet
            handle.write(data[int(len(data) * cut):])
        _pass(folder)
        assert path.exists() and not _outcomes(world), "a file that just changed was taken"
        if renamed:  # a file renamed into flows/ is complete as it is: no settle time
            tmp = path.with_name("slow.tmp")
            path.rename(tmp)
            tmp.rename(path)
            folder.drops.note_arrival(path)
        else:
            folder.clock.ms += int(_SETTLE_S * 1000) + 1
        _pass(folder)
        outcomes = _outcomes(world)
        assert outcomes["slow.start.json"][0] == "done", folder.logs
        assert outcomes["slow.start.json"][2] == data
        (workflow_id,) = _workflows(world) - before
        assert _first_event(world, workflow_id)["input"] == {"n": 0, "s": "", **input_}
    finally:
        _reset(world, before)


def test_a_request_naming_a_flow_longer_than_a_file_name_is_rejected_not_stuck(world):
    """flows/<name>.flow past NAME_MAX made is_file() raise ENAMETOOLONG: the request stayed in taken/
    for ever, "left for now" at every rescan, as if the disk had failed."""
    before = _workflows(world)
    folder = _folder(world)
    data = json.dumps({"flow": "a" * 300}).encode()
    try:
        _plant(world, world.home / "flows" / "long.start.json", "file", data)
        _pass(folder)
        outcome, _, kept, where = _outcomes(world)["long.start.json"]
        assert outcome == "rejected" and kept == data, folder.logs
        assert "unknown flow" in Path(f"{where}.error").read_text()
    finally:
        _reset(world, before)


def test_an_oversized_request_is_rejected_whole(world):
    before = _workflows(world)
    folder = _folder(world)
    data = json.dumps({"flow": "Echo", "input": {"s": "x" * MAX_EVENT_BYTES}}).encode()
    try:
        _plant(world, world.home / "flows" / "huge.start.json", "file", data)
        _pass(folder)
        outcome, _, kept, _ = _outcomes(world)["huge.start.json"]
        assert outcome == "rejected" and kept == data
        assert _workflows(world) == before
    finally:
        _reset(world, before)


# --- a real supervisor: one batch of every class ---------------------------------------------------------------

BATCH = {
    "good": b'{"flow": "Echo", "input": {"n": 1}}',
    "empty": b"",
    "not-json": b"{flow: Echo}",
    "array": b'["Echo"]',
    "flow-int": b'{"flow": 7}',
    "input-list": b'{"flow": "Echo", "input": [1]}',
    "id-int": b'{"flow": "Echo", "id": 5}',
    "path": b'{"flow": "../../outside/secret.txt"}',
    "abs": b'{"flow": "/etc/passwd"}',
    "nan": b'{"flow": "Echo", "input": {"n": NaN}}',
    "inf": b'{"flow": "Echo", "input": {"n": 1e999}}',
    "surrogate": b'{"flow": "Echo", "input": {"s": "\\ud800"}}',
    "latin1": b'{"flow": "Echo", "input": {"s": "\xe9"}}',
    "deep": ('{"flow": "Echo", "input": {"n": ' + deep(10_000) + "}}").encode(),
    "bad-id": b'{"flow": "Echo", "id": "../x"}',
    "taken": b'{"flow": "Echo", "id": "taken-id"}',
    "unknown-input": b'{"flow": "Echo", "input": {"zz": 1}}',
    "nul": b'{"flow": "Ec\\u0000ho"}',
    "binary": bytes(range(256)),
}


def test_a_real_supervisor_takes_a_batch_of_hostile_requests_and_keeps_running(world):
    before = _workflows(world)
    flows = world.home / "flows"
    for name, data in BATCH.items():
        tmp = flows / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.rename(flows / f"{name}{REQUEST_SUFFIX}")
    os.symlink(world.outside / "secret.txt", flows / f"link{REQUEST_SUFFIX}")
    os.mkfifo(flows / f"fifo{REQUEST_SUFFIX}")
    supervisor = SupervisorProcess(world.home)
    try:
        wait_for(lambda: len([n for n, v in _outcomes(world).items() if v[0] in ("done", "rejected")]) == len(BATCH),
                 timeout=60, what="every request done or rejected")
        assert supervisor.process.poll() is None, supervisor.output()
        outcomes = _outcomes(world)
        assert {n: v[0] for n, v in outcomes.items()} == {
            f"{n}{REQUEST_SUFFIX}": "done" if n == "good" else "rejected" for n in BATCH}
        assert all(outcomes[f"{n}{REQUEST_SUFFIX}"][2] == data for n, data in BATCH.items())
        assert os.path.islink(flows / f"link{REQUEST_SUFFIX}") and (flows / f"fifo{REQUEST_SUFFIX}").exists()
        output = supervisor.output()
        assert TRACEBACK not in output and "internal error" not in output, output
        assert len(_workflows(world) - before) == 1
    finally:
        supervisor.stop()
        _reset(world, before)
    world.assert_outside_untouched("a real supervisor")


def test_report_the_classes_tried():
    """Not a check: prints how many requests of each class the fuzzing above dropped (pytest -s)."""
    for what, count in sorted(COUNTS.items()):
        print(f"  {count:5d}  {what}")
