"""Hand-edited histories: random mutations of real ones, then every command that reads a history.

The seeds are the golden histories (tests/golden/histories: every event type and every statement
of the language) and a few made here by `lf run`. Two kinds of edit:

- *byte edits*, as a careless editor or a bad disk makes them: a flipped byte, a cut, a lost,
  doubled or swapped line, inserted garbage, NULs, CRLF line ends, an empty file (the crc catches
  most; a cut at the end is a torn tail, which readers ignore);
- *record edits* with the crc recomputed, as a careful hand-edit makes them (so the line passes the
  checksum and reaches the fold): a field set to a random JSON value or removed, an unknown field, a
  changed type, seq or ts, events reordered or dropped or doubled with seqs renumbered, the pinned
  flow (``WorkflowStarted.flow``) damaged deep inside, a hostile ``workflow_id``.

Whatever the edit: `lf inspect`, `lf inspect --json`, `lf history`, `lf history --json`, `lf logs`
and `lf replay` of that workflow exit with a documented code (0, 1, 3 or 4), never a traceback;
`lf list` exits 0, shows the healthy workflow beside it and at most warns about the edited one;
`lf signal` and `lf cancel` either append valid lines or refuse and leave the file as it was; no
read command changes the history; nothing outside the home changes.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test_fuzz_entry_points import REPO, World, assert_documented, fuzz_settings

from localflow.core import events as ev
from localflow.store import codec
from localflow.store import history as history_store

GOLDEN = REPO / "tests" / "golden" / "histories"
SEEDS = sorted(GOLDEN.glob("*.jsonl"))
HOSTILE_VALUES = [None, True, 0, -1, 2**63, 10**300, 1.5, "", "x" * 10_000, "\x00", "\ud800",
                  [], {}, [[[[]]]], {"kind": "Flow"}, {"kind": "Nope"}, "2026-13-45T99:99:99Z", "NaN", -(2**70),
                  "../../outside", {"a": [1, {"b": None}]}, [None] * 50]
RECORD_EDITS = ("set field", "drop field", "unknown field", "retype", "reseq", "rets", "reorder", "drop event",
                "double event", "damage pinned flow", "hostile id", "nested set", "nested drop")
BYTE_EDITS = ("flip byte", "cut", "drop line", "double line", "swap lines", "insert garbage", "nul line",
              "crlf", "empty", "torn tail", "strip crc", "random bytes line")
COUNTS: dict[str, int] = {}


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def _encode(records: list[dict]) -> bytes:
    """Records as lines whose crc matches, whatever they hold (a careful hand-edit)."""
    out = []
    for record in records:
        record = {k: v for k, v in record.items() if k != "crc"}
        try:
            out.append(json.dumps({**record, "crc": codec.checksum(record)}, ensure_ascii=False,
                                  separators=(",", ":")).encode("utf-8", "surrogatepass"))
        except (ValueError, TypeError, UnicodeEncodeError):
            out.append(json.dumps(record, separators=(",", ":")).encode())
    return b"\n".join(out) + b"\n"


def _records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in _lines(data)]


def _renumber(records: list[dict]) -> list[dict]:
    return [{**r, "seq": i} for i, r in enumerate(records, start=1)]


def _random_path(value, rng: random.Random) -> list:
    """A path (keys and indexes) to some container inside ``value``."""
    path, here = [], value
    while isinstance(here, (dict, list)) and here and rng.random() < 0.75:
        key = rng.choice(list(here)) if isinstance(here, dict) else rng.randrange(len(here))
        if not isinstance(here[key], (dict, list)) or not here[key]:
            break
        path.append(key)
        here = here[key]
    return path


def _at(value, path: list):
    for key in path:
        value = value[key]
    return value


def record_edit(data: bytes, kind: str, rng: random.Random) -> bytes:
    records = _records(data)
    i = rng.randrange(len(records))
    record = records[i]
    fields = [k for k in record if k not in ("crc",)]
    if kind == "set field":
        record[rng.choice(fields)] = rng.choice(HOSTILE_VALUES)
    elif kind == "drop field":
        del record[rng.choice(fields)]
    elif kind == "unknown field":
        record[rng.choice(["extra", "__class__", "", "seq2", "Type"])] = rng.choice(HOSTILE_VALUES)
    elif kind == "retype":
        record["type"] = rng.choice(sorted(ev.EVENT_TYPES) + ["", "Nope", "workflowstarted", "WorkflowStarted "])
    elif kind == "reseq":
        record["seq"] = rng.choice([0, -1, record["seq"] + 1, record["seq"] - 1, 2**62, "1", None, 1.0, True])
    elif kind == "rets":
        record["ts"] = rng.choice(["", "yesterday", "2026-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z",
                                   "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z", 0, None, -1, 1e300,
                                   "2026-02-30T00:00:00.000Z", "2026-01-01T00:00:00.000+99:00"])
    elif kind == "reorder" and len(records) > 1:
        j = rng.randrange(len(records))
        records[i], records[j] = records[j], records[i]
        records = _renumber(records)
    elif kind == "drop event":
        del records[i]
        records = _renumber(records) if records else records
    elif kind == "double event":
        records.insert(i, dict(record))
        records = _renumber(records)
    elif kind == "damage pinned flow":
        started = records[0]
        if isinstance(started.get("flow"), dict):
            path = _random_path(started["flow"], rng)
            target = _at(started["flow"], path)
            key = rng.choice(list(target)) if isinstance(target, dict) and target else (
                rng.randrange(len(target)) if isinstance(target, list) and target else None)
            if key is not None:
                if rng.random() < 0.3 and isinstance(target, dict):
                    del target[key]
                else:
                    target[key] = rng.choice(HOSTILE_VALUES)
    elif kind == "hostile id":
        records[0]["workflow_id"] = rng.choice(["../x", "", "other", "a" * 500, None, 7, "x\x00y"])
    elif kind in ("nested set", "nested drop"):
        path = _random_path(record, rng)
        target = _at(record, path)
        if isinstance(target, dict) and target:
            key = rng.choice(list(target))
            if kind == "nested drop":
                del target[key]
            else:
                target[key] = rng.choice(HOSTILE_VALUES)
        elif isinstance(target, list) and target:
            index = rng.randrange(len(target))
            if kind == "nested drop":
                del target[index]
            else:
                target[index] = rng.choice(HOSTILE_VALUES)
    return _encode(records)


def byte_edit(data: bytes, kind: str, rng: random.Random) -> bytes:
    lines = _lines(data)
    if kind == "flip byte" and data:
        at = rng.randrange(len(data))
        return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
    if kind == "cut":
        return data[: rng.randrange(len(data) + 1)]
    if kind == "drop line" and lines:
        del lines[rng.randrange(len(lines))]
    elif kind == "double line" and lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif kind == "swap lines" and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "insert garbage":
        at = rng.randrange(len(data) + 1)
        return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))) + data[at:]
    elif kind == "nul line" and lines:
        i = rng.randrange(len(lines))
        lines[i] = b"\x00" * len(lines[i])
    elif kind == "crlf":
        return data.replace(b"\n", b"\r\n")
    elif kind == "empty":
        return b""
    elif kind == "torn tail":
        return data + rng.choice([b'{"seq":', b"\x00\x00\x00", lines[-1][: len(lines[-1]) // 2] if lines else b"x"])
    elif kind == "strip crc" and lines:
        i = rng.randrange(len(lines))
        record = json.loads(lines[i])
        record.pop("crc", None)
        lines[i] = json.dumps(record, separators=(",", ":")).encode()
    elif kind == "random bytes line":
        lines.insert(rng.randrange(len(lines) + 1), bytes(rng.randrange(256) for _ in range(rng.randrange(60))))
    return b"".join(line + b"\n" for line in lines)


# --- the world ------------------------------------------------------------------------------------------------

SEED_FLOW = """\
flow Seed
  input items = ["a", "b"]
  set n = len(items)
  parallel:
    branch:
      step left:
        run ["sh", "-c", "echo '{\\"x\\": 1}'"]
    branch:
      sleep 1s
  for item in items:
    step each:
      run ["echo", item]
  step flaky:
    run ["sh", "-c", "echo oops >&2; exit 3"]
    retry 1 every 1s
    catch exit 3:
      set caught = true
  step waiter:
    wait signal go timeout 1h
  return {"n": n, "left": left.result}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    w = World(tmp_path_factory.mktemp("fuzz-histories"), {"Seed": SEED_FLOW})
    ran = w.lf("run", "Seed", "--skip-time", "--id", "seed-waiting")  # to the end: the 1h wait is skipped too
    assert ran.code in (0, 1), str(ran)
    started = w.lf("start", "Seed", "--id", "seed-signalled")
    assert started.code == 0
    assert w.lf("signal", "seed-signalled", "go", "--data", '{"ok": [1, 2]}').code == 0
    assert w.lf("cancel", "seed-signalled", "--reason", "enough").code == 0
    assert w.lf("start", "Seed", "--id", "healthy").code == 0
    workflows = w.home / "var" / "workflows"
    w.seeds = {p.stem: p.read_bytes() for p in SEEDS}
    for workflow_id in ("seed-waiting", "seed-signalled"):
        w.seeds[workflow_id] = (workflows / workflow_id / "history.jsonl").read_bytes()
        shutil.rmtree(workflows / workflow_id)
    return w


def _plant(world: World, data: bytes) -> Path:
    folder = world.home / "var" / "workflows" / "edited"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "lock").touch()
    (folder / "history.jsonl").write_bytes(data)
    return folder


READS = (("inspect",), ("inspect", "--json"), ("history",), ("history", "--json"), ("logs",), ("replay",),
         ("inspect", "--at", "3"), ("history", "--upto", "2"), ("export",))


def _check_every_command(world: World, data: bytes, what: str) -> None:
    folder = _plant(world, data)
    history = folder / "history.jsonl"
    for argv in READS:
        outcome = world.lf(argv[0], "edited", *argv[1:])
        assert_documented(outcome, {0, 2, 3, 4, 5, 6} if argv[0] in ("inspect", "history") and len(argv) == 3 else
                          {0, 3, 4, 5, 6})
        assert history.read_bytes() == data, f"`lf {' '.join(argv)}` changed the history"
    for argv in (("list",), ("list", "--json")):
        outcome = world.lf(*argv)
        assert_documented(outcome, {0})
        assert "healthy" in outcome.out, str(outcome)
        assert history.read_bytes() == data, "`lf list` changed the history"
    for argv in (("signal", "edited", "go", "--data", "1"), ("cancel", "edited")):
        before = history.read_bytes()
        outcome = world.lf(*argv)
        assert_documented(outcome, {0, 2, 3, 4, 5, 6})
        after = history.read_bytes()
        if outcome.code != 0:
            assert after == before, f"a refused `lf {argv[0]}` changed the history: {outcome}"
        else:  # it appended whole lines after the valid prefix (a torn tail cut away and kept beside it)
            read = history_store.parse(history, before)
            kept = before[: read.valid_size]
            assert after.startswith(kept) and after.endswith(b"\n"), str(outcome)
            for line in _lines(after[len(kept):]):
                codec.decode(line)
            if read.torn:
                assert (folder / f"history.jsonl.torn-{read.valid_size}").read_bytes() == read.torn
    world.assert_outside_untouched(what)


def _edit(data: bytes, family: str, kind: str, salt: int) -> bytes:
    edit = record_edit if family == "record" else byte_edit
    return edit(data, kind, random.Random(salt))


@pytest.mark.parametrize("seed", sorted(p.stem for p in SEEDS) + ["seed-waiting", "seed-signalled"])
def test_every_seed_history_as_it_is_is_read_by_every_command(world, seed):
    """The unedited seeds first (a real history with a recorded WorkflowNondeterministic crashed `lf history`)."""
    _check_every_command(world, world.seeds[seed], seed)


@fuzz_settings(120)
@given(seed=st.sampled_from(sorted(p.stem for p in SEEDS) + ["seed-waiting", "seed-signalled"]), at=st.integers(1, 400),
       command=st.sampled_from([("inspect", "--at"), ("history", "--upto")]), as_json=st.booleans())
def test_time_travel_to_any_point_of_any_history_answers(world, seed, at, command, as_json):
    """`lf inspect --at SEQ` folds a prefix that may stop inside a transaction (a lock about to be
    requested crashed it); `lf history --upto SEQ` shows it."""
    data = world.seeds[seed]
    at = 1 + (at - 1) % data.count(b"\n")
    _plant(world, data)
    outcome = world.lf(command[0], "edited", command[1], str(at), *(["--json"] if as_json else []))
    assert_documented(outcome, {0, 4})


def _first_of(records: list[dict], type_: str) -> dict:
    return next(r for r in records if r["type"] == type_)


def _retimer(records: list[dict]) -> None:
    """A pinned duration that is a fraction: the timer's fire_at could not be written (ValueError)."""
    def walk(node):
        if isinstance(node, dict):
            for key in node:
                if key in ("duration_ms", "timeout_ms", "initial_ms"):
                    node[key] = 1.5
                walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(records[0]["flow"])


HAND_EDITS = {  # each crashed a command before (a traceback, found by the fuzzing above)
    "ts is null": ("cancel.ok", lambda rs: rs[-1].update(ts=None)),
    "ts is a number": ("cancel.ok", lambda rs: rs[-1].update(ts=1)),
    "ts in the year 9999": ("signals.ok", lambda rs: [r.update(ts="9999-12-31T23:59:59.999Z") for r in rs]),
    "an attempt that is text": ("cancel.ok", lambda rs: _first_of(rs, "ActivityScheduled").update(attempt="1")),
    "an error that is text": ("activities.ok", lambda rs: _first_of(rs, "ActivityFailed").update(error="boom")),
    "a parent without an id": ("cancel.ok", lambda rs: rs[0].update(parent={"a": 1})),
    "a workflow id that is null": ("cancel.ok", lambda rs: rs[0].update(workflow_id=None)),
    "a pinned flow named 7": ("cancel.ok", lambda rs: rs[0]["flow"].update(name=7)),
    "a pinned flow that is a list": ("cancel.ok", lambda rs: rs[0].update(flow=[1])),
    "pinned durations of 1.5 ms": ("activities.ok", _retimer),
    "argv of numbers": ("cancel.ok", lambda rs: _first_of(rs, "ActivityScheduled").update(argv=[1, None])),
    "undo steps of numbers": ("cancel.ok", lambda rs: _first_of(rs, "CompensationStarted").update(steps=[1, {}])),
}


@pytest.mark.parametrize("edit", list(HAND_EDITS))
def test_a_careful_hand_edit_that_crashed_a_command_is_reported(world, edit):
    seed, change = HAND_EDITS[edit]
    records = _records(world.seeds[seed])
    change(records)
    _check_every_command(world, _encode(records), edit)


@pytest.mark.parametrize("at", [106, 112])
def test_time_travel_to_just_before_a_lock_is_requested(world, at):
    """`lf inspect --at` there showed a lock statement's name, an expression, as text: a TypeError."""
    _plant(world, world.seeds["patterns.ok"])
    for argv in (("inspect", "edited", "--at", str(at)), ("inspect", "edited", "--at", str(at), "--json")):
        outcome = world.lf(*argv)
        assert_documented(outcome, {0})


seeds = st.sampled_from(sorted(p.stem for p in SEEDS) + ["seed-waiting", "seed-signalled"])


@pytest.mark.parametrize("family, kind", [("record", k) for k in RECORD_EDITS] + [("byte", k) for k in BYTE_EDITS])
@fuzz_settings(8)
@given(seed=seeds, salt=st.integers(0, 2**32),
       more=st.lists(st.tuples(st.integers(0, 100), st.integers(0, 2**32)), max_size=2))
def test_any_edit_of_a_history_is_reported_by_every_command_not_a_crash(world, family, kind, seed, salt, more):
    names = RECORD_EDITS if family == "record" else BYTE_EDITS
    data = _edit(world.seeds[seed], family, kind, salt)
    done = [kind]
    COUNTS[f"{family}: {kind}"] = COUNTS.get(f"{family}: {kind}", 0) + 1
    for which, extra_salt in more:  # and maybe more edits of the same family on top
        extra = names[which % len(names)]
        try:
            data = _edit(data, family, extra, extra_salt)
        except (ValueError, IndexError, KeyError, TypeError, AttributeError):
            break  # a byte edit left no JSON line for a record edit to work on
        done.append(extra)
    _check_every_command(world, data, (seed, done))


def test_report_the_classes_tried():
    """Not a check: how many edits of each class the fuzzing above made (pytest -s)."""
    for what, count in sorted(COUNTS.items()):
        print(f"  {count:5d}  {what}")
