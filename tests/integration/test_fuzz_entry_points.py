"""Hostile-input fuzzing of the command line: `lf start/run -i/--input`, `lf signal --data`, `lf cancel`,
`lf terminate`, `lf inspect/history/list` (and `--home`), with ids, names, flow names and JSON built to hurt.

Whatever the arguments, an `lf` command

- exits 0 or with a documented code (localflow/errors.py: 1, 2, 3, 4) and, when it fails,
  says so in one clear message on stderr (``error: ...``, argparse's ``usage``/``error``, or a
  flow diagnostic ``file:line:col: ...``), never a Python traceback;
- writes nothing outside its home: a sentinel directory beside the home (which is also the
  current directory of every call) is byte for byte unchanged, with no new entry;
- leaves no half-made workflow: a start that fails leaves var/workflows/ exactly as it was
  (no staging directory either); one that succeeds leaves exactly one complete workflow.

Most examples call ``localflow.cli.main.main(argv)`` in-process (a few ms each; argparse's own
exits are SystemExit, caught); a smaller number run the real `python -m localflow` to check that
the process boundary (argv bytes, surrogateescape, exit status) says the same. The other entry
points live beside this file: test_fuzz_dropfolder.py (``.start.json`` requests),
test_fuzz_flow_files.py (flow files), test_fuzz_activity_output.py (activity stdout),
test_fuzz_histories.py (hand-edited histories) and test_fuzz_symlinks.py (planted symlinks).
They share the harness below.

Examples are derandomized (CI sees the same ones every run); the suite runs half of each count,
``LF_FUZZ_EXAMPLES=N`` runs every count times N for a long run (with N > 1 the examples are
also drawn at random).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localflow.cli.main import main
from localflow.core.jsonvalue import MAX_DEPTH, MAX_INT_DIGITS

REPO = Path(__file__).resolve().parents[2]
DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4, 5, 6}  # localflow/errors.py (130, an interrupt, never happens here)
TRACEBACK = "Traceback (most recent call last)"
FACTOR = max(1, int(os.environ.get("LF_FUZZ_EXAMPLES", "1") or "1"))
# The suite runs half of each count (it runs on four Pythons); LF_FUZZ_EXAMPLES=1 runs them whole.
SCALE = FACTOR if os.environ.get("LF_FUZZ_EXAMPLES") else 0.5


def fuzz_settings(examples: int, **more) -> settings:
    """``examples`` per run (half in the suite, times LF_FUZZ_EXAMPLES when set), no deadline,
    reproducible unless multiplied."""
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, derandomize=FACTOR == 1,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example],
                    **more)


# --- the harness: a home, a sentinel outside it, in-process and real `lf` ------------------------------


@dataclass
class Outcome:
    argv: tuple
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return (f"lf {' '.join(map(_printable, self.argv))} -> {self.code}\nstdout: {_printable(self.out[-2000:])}"
                f"\nstderr: {_printable(self.err[-2000:])}")


def _printable(text: object) -> str:
    return ascii(text) if not isinstance(text, str) or len(text) < 200 else ascii(text[:200]) + f"...({len(text)})"


_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")
_CLEAR = re.compile(r"^(error: |usage: |lf: error: |.+:\d+:\d+: )", re.DOTALL)


class World:
    """``root/home`` (the LocalFlow home) beside ``root/outside`` (a sentinel, and the current directory)."""

    def __init__(self, root: Path, flows: dict[str, str] | None = None, repo_flows: bool = False) -> None:
        self.root = root
        self.home = root / "home"
        self.outside = root / "outside"
        self.cwd = self.outside / "cwd"
        self.cwd.mkdir(parents=True)
        (self.outside / "secret.txt").write_text("do not touch\n")
        (self.outside / "victim").mkdir()
        (self.outside / "victim" / "history.jsonl").write_text("not yours\n")
        os.chmod(self.outside / "secret.txt", 0o644)
        self.elsewhere = root / "elsewhere"  # a folder a --home symlink may point to: its contents may change
        self.elsewhere.mkdir()
        if repo_flows:
            shutil.copytree(REPO / "flows", self.home / "flows")
        for name, text in (flows or {}).items():
            path = self.home / "flows" / f"{name}.flow"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.home.mkdir(exist_ok=True)
        self.sentinel = self.outside_tree()

    # -- calls

    def lf(self, *argv: str, home: bool = True) -> Outcome:
        """``main(argv)`` in-process, in ``cwd``, with its output captured; any exception but
        SystemExit propagates (a traceback the user would have seen)."""
        full = (["--home", str(self.home)] if home else []) + list(argv)
        # as a real process has them: UTF-8, strict on stdout, backslashreplace on stderr, bytes below
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
        err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)
        before = os.getcwd()
        os.chdir(self.cwd)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(full)
                except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            os.chdir(before)
        out.flush()
        err.flush()
        return Outcome(tuple(argv), code, out.buffer.getvalue().decode("utf-8", "replace"),
                       err.buffer.getvalue().decode("utf-8", "replace"))

    def lf_process(self, *argv: str | bytes, timeout: float = 60) -> Outcome:
        """The real CLI in a subprocess (argv may hold bytes: what a shell can pass that is not UTF-8)."""
        env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
        env.pop("LOCALFLOW_HOME", None)
        done = subprocess.run([sys.executable, "-m", "localflow", "--home", str(self.home), *argv],
                              capture_output=True, timeout=timeout, cwd=self.cwd, env=env)
        return Outcome(tuple(argv), done.returncode, done.stdout.decode("utf-8", "replace"),
                       done.stderr.decode("utf-8", "replace"))

    # -- what must hold

    def outside_tree(self) -> dict:
        """Every entry under root except the home: type, size and content hash (links: their target)."""
        found = {}
        for top, dirs, files in os.walk(self.root):
            if Path(top) == self.root:
                dirs[:] = [d for d in dirs if d not in ("home", "elsewhere")]
                files = [f for f in files if f not in ("home", "elsewhere") and not f.startswith("supervisor-")]
            for name in dirs + files:
                path = Path(top, name)
                st_ = os.lstat(path)
                if os.path.islink(path):
                    found[str(path)] = ("link", os.readlink(path))
                elif path.is_file():
                    found[str(path)] = ("file", st_.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
                else:
                    found[str(path)] = ("dir", st_.st_mode)
        return found

    def assert_outside_untouched(self, what: object = "") -> None:
        now = self.outside_tree()
        assert now == self.sentinel, f"something was written outside the home: {what}\n" + "\n".join(
            f"  {k}: {self.sentinel.get(k)} -> {now.get(k)}" for k in sorted(set(now) | set(self.sentinel))
            if now.get(k) != self.sentinel.get(k))

    def workflow_entries(self) -> set[str]:
        """Every entry of var/workflows/ (staging directories included)."""
        root = self.home / "var" / "workflows"
        return set(os.listdir(root)) if root.is_dir() else set()


def assert_documented(outcome: Outcome, codes: set[int] = DOCUMENTED_EXIT_CODES) -> None:
    """A documented exit code; no traceback; a failure explained by one clear message on stderr,
    which never carries a raw control character (an escape sequence would rewrite the terminal;
    cli/main.py's ``shown`` escapes them)."""
    assert TRACEBACK not in outcome.err and TRACEBACK not in outcome.out, str(outcome)
    assert outcome.code in codes, str(outcome)
    raw = [c for c in outcome.err if c not in "\n\t" and (unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI)]
    assert not raw, f"raw control characters {raw!r} on stderr: {outcome}"
    if outcome.code not in (0, 1) or (outcome.code == 1 and not outcome.out):
        message = outcome.err.strip()  # or a report on stdout: `lf replay`, `lf inspect` of a diverged workflow
        assert message or outcome.out.strip(), f"failed without a word: {outcome}"
        assert not message or _CLEAR.match(message) or outcome.out.strip(), f"not one clear message: {outcome}"


def remove_workflow(world: World, workflow_id: str) -> None:
    shutil.rmtree(world.home / "var" / "workflows" / workflow_id)


# --- hostile values ------------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "", ".", "..", "../x", "../../outside/secret.txt", "/etc/passwd", "/", "a/b", "a\\b", "~", "~/x",
    "x\x00y", "\x00", "A" * 10_000, "a" * 129, "a" * 128, "a" * 256, "ünïcødé", "名前", "😀", "\u202eevil",
    "x\u200by", "\x1b[31mred\x1b[0m", "line\nbreak", "cr\rx", "tab\tx", "\x07", "\x7f", "\udcff", "\ud800",
    "x\udce9y", "-x", "--help", "--", "-", "*", "?", "$HOME", "`id`", "$(id)", "x;rm -rf /", "x.flow",
    "x.start.json", "flows/x", "var/workflows/x", "PurchaseFlow/", "PurchaseFlow.flow", "CON", "nul",
    "a..b", ".hidden", "x.", "x-", "_x", "0", "1" * 128, " x", "x ", "\ufeffx", "\ufffd", "\U0010ffff",
]
HOSTILE_JSON = [
    "NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e309", "[NaN]", '{"a": Infinity}',
    "[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000, "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    "[" * MAX_DEPTH + "]" * MAX_DEPTH, "[" * 10_000, "9" * (MAX_INT_DIGITS + 1), "9" * MAX_INT_DIGITS,
    "-" + "9" * 5000, "9" * 100_000, "0." + "0" * 10_000 + "1", "1" + "0" * 400 + ".0", '"\\ud800"',
    '"\\udcff"', '"\\u0000"', '{"\\ud800": 1}', '{"a": "\\udfff\\ud800"}', '"' + "x" * 100_000 + '"', "",
    " ", "nul", "null", "true", "{", "}", "[1,]", "{'a': 1}", "\x00", '"\x00"', '"\x01"', "01", "+1", ".5",
    "0x10", "1_000", '{"a": 1, "a": 2}', '{"__proto__": 1}', '"\\u202e"', "[" + ",".join(["1"] * 100_000) + "]",
    '{"x": "' + "é" * 50_000 + '"}', '"secret:NAME"', '{"$secret": "X"}', "\ufeff{}", "{}\x00",
]


def _json_values(max_leaves: int = 12) -> st.SearchStrategy:
    leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
              | st.text(st.characters(blacklist_categories=()), max_size=20))
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=max_leaves)


def _raw_json(value: object) -> str:
    try:
        return json.dumps(value, allow_nan=True)
    except (ValueError, UnicodeEncodeError, RecursionError):
        return repr(value)


def deep(levels: int, kind: str = "list") -> str:
    return ("[" * levels + "]" * levels) if kind == "list" else ('{"a":' * levels + "0" + "}" * levels)


hostile_text = st.one_of(
    st.sampled_from(HOSTILE_NAMES),
    st.text(st.characters(blacklist_categories=()), max_size=40),  # surrogates and controls included
    st.text(alphabet="./\\-_~a0\x00\n ", max_size=20),
    st.builds(lambda n, c: c * n, st.integers(0, 10_000), st.sampled_from(["a", ".", "/", "é", "\x00", "😀"])),
)
hostile_json = st.one_of(
    st.sampled_from(HOSTILE_JSON),
    _json_values().map(_raw_json),
    st.builds(deep, st.integers(MAX_DEPTH - 2, 10_000), st.sampled_from(["list", "dict"])),
    st.text(st.characters(blacklist_categories=()), max_size=40),
)


# --- the worlds ------------------------------------------------------------------------------------------

INPUTS = """\
flow Fz
  input a = 1
  input b = "x"
  input c = null
  step s:
    run ["true"]
  return a
"""
WAITER = """\
flow Waiter
  input n = 0
  step approval:
    wait signal approve timeout 1h
  return approval.result
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    w = World(tmp_path_factory.mktemp("fuzz-cli"), {"Fz": INPUTS, "Waiter": WAITER})
    started = w.lf("start", "Waiter", "--id", "waiting")
    assert started.code == 0, str(started)
    started = w.lf("start", "Waiter", "--id", "victim-finished")
    assert w.lf("terminate", "victim-finished").code == 0
    w.baseline = w.workflow_entries()
    return w


def _check_start(world: World, outcome: Outcome, before: set[str]) -> None:
    assert_documented(outcome)
    after = world.workflow_entries()
    if outcome.code == 0:
        new = after - before
        assert len(new) == 1, f"one workflow expected, found {sorted(new)}: {outcome}"
        (workflow_id,) = new
        assert workflow_id in outcome.out, str(outcome)
        folder = world.home / "var" / "workflows" / workflow_id
        assert {p.name for p in folder.iterdir()} >= {"history.jsonl", "lock"}, str(outcome)
        first = json.loads(folder.joinpath("history.jsonl").read_bytes().splitlines()[0])
        assert first["type"] == "WorkflowStarted" and first["workflow_id"] == workflow_id
        remove_workflow(world, workflow_id)
    else:
        assert after == before, f"a failed start left {sorted(after ^ before)}: {outcome}"
    world.assert_outside_untouched(outcome)


# --- lf start / lf run: flow names, ids, -i and --input ---------------------------------------------------


@fuzz_settings(150)
@given(flow=hostile_text)
def test_start_with_a_hostile_flow_name(world, flow):
    before = world.workflow_entries()
    outcome = world.lf("start", "--", flow) if flow.startswith("-") else world.lf("start", flow)
    _check_start(world, outcome, before)
    if flow not in ("Fz", "Waiter"):  # an unknown flow (5), or a file that is no flow (2): never a storage error
        assert outcome.code in (2, 5), str(outcome)


@fuzz_settings(150)
@given(workflow_id=hostile_text)
def test_start_with_a_hostile_id(world, workflow_id):
    before = world.workflow_entries()
    outcome = world.lf("start", "Fz", f"--id={workflow_id}")
    _check_start(world, outcome, before)


@fuzz_settings(200)
@given(pairs=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]) | hostile_text, hostile_json | hostile_text),
                      min_size=1, max_size=3))
def test_start_with_hostile_pairs(world, pairs):
    before = world.workflow_entries()
    argv = ["start", "Fz"]
    for key, value in pairs:
        argv.append(f"-i{key}={value}")
    _check_start(world, world.lf(*argv), before)


@fuzz_settings(200)
@given(raw=hostile_json | st.dictionaries(st.sampled_from(["a", "b", "c"]) | hostile_text, _json_values(),
                                          max_size=3).map(_raw_json))
def test_start_with_a_hostile_input_document(world, raw):
    before = world.workflow_entries()
    _check_start(world, world.lf("start", "Fz", f"--input={raw}"), before)


@pytest.mark.parametrize("argv, shown", [
    (("start", "\x1b[2J\x1b]0;owned\x07"), "\\x1b[2J"), (("start", "Fz", "-i\x1b[31m=1"), "\\x1b[31m"),
    (("list", "\x1b[2J"), "\\x1b[2J"), (("start", "a" * 300), "unknown flow"),
    (("start", "\u202eevil"), "\\u202e"),
])
def test_text_from_the_command_line_never_drives_the_terminal(world, argv, shown):
    """Control characters (escape sequences, bidi overrides) in a message are written as escapes."""
    outcome = world.lf(*argv)
    assert_documented(outcome)
    assert outcome.code in (2, 5) and shown in outcome.err, str(outcome)


def test_values_at_the_limits_are_taken_and_one_past_them_refused(world):
    """The limits the fuzzing crosses at random, crossed on purpose at the exact boundary."""
    before = world.workflow_entries()
    for raw, ok in ((deep(MAX_DEPTH - 1), True), (deep(MAX_DEPTH), False),
                    ("9" * MAX_INT_DIGITS, True), ("9" * (MAX_INT_DIGITS + 1), False)):
        outcome = world.lf("start", "Fz", f"--input={{\"c\": {raw}}}")  # c: any value (its default is null)
        _check_start(world, outcome, before)
        assert (outcome.code == 0) == ok, str(outcome)


@pytest.mark.parametrize("argv", [
    ("signal", "waiting", "approve", "--data=--"), ("start", "Fz", "--input=--"), ("start", "Fz", "-i--"),
    ("start", "Fz", "-i=--"), ("start", "Fz", "--id=--"), ("inspect", "waiting", "--at=--"),
    ("history", "waiting", "--upto=--"), ("list", "--limit=--"), ("list", "--status=--"), ("list", "--flow=--"),
    ("run", "Fz", "--workers=--"),
])
def test_an_option_given_two_dashes_gets_them_as_its_text(world, argv):
    """argparse before Python 3.13 turns ``--data=--`` into ``[]`` (tracebacks, a start that silently
    dropped its --input or --id, a list recorded as a reason); cli/main.py gives the option ``--``."""
    before = world.workflow_entries()
    outcome = world.lf(*argv)
    assert_documented(outcome)
    assert outcome.code == (0 if argv[-1] == "--flow=--" else 2), str(outcome)
    assert world.workflow_entries() == before, str(outcome)


def test_a_reason_of_two_dashes_is_recorded_as_that_text(world):
    created = world.lf("start", "Waiter")
    workflow_id = created.out.split()[0]
    try:
        assert world.lf("cancel", "--reason=--", workflow_id).code == 0
        events = json.loads(world.lf("history", workflow_id, "--json").out)
        assert [e["reason"] for e in events if e["type"] == "CancelRequested"] == ["--"]
    finally:
        remove_workflow(world, workflow_id)


# --- lf signal, lf cancel, lf terminate ------------------------------------------------------------------


def _history_size(world: World, workflow_id: str) -> int:
    return (world.home / "var" / "workflows" / workflow_id / "history.jsonl").stat().st_size


@fuzz_settings(200)
@given(workflow_id=st.sampled_from(["waiting", "victim-finished"]) | hostile_text,
       name=st.sampled_from(["approve", "other"]) | hostile_text,
       data=st.sampled_from(["1", '{"ok": true}']) | hostile_json)
def test_signal_with_hostile_id_name_and_data(world, workflow_id, name, data):
    sizes = {w: _history_size(world, w) for w in ("waiting", "victim-finished")}
    argv = ["signal", f"--data={data}", "--", workflow_id, name]
    outcome = world.lf(*argv)
    assert_documented(outcome)
    grown = {w for w in sizes if _history_size(world, w) != sizes[w]}
    assert grown == ({workflow_id} if outcome.code == 0 else set()), str(outcome)
    assert world.workflow_entries() == world.baseline, str(outcome)
    world.assert_outside_untouched(outcome)


@fuzz_settings(120)
@given(command=st.sampled_from(["cancel", "terminate"]),
       workflow_id=st.sampled_from(["victim-finished", "nobody"]) | hostile_text,
       reason=st.none() | hostile_text)
def test_cancel_and_terminate_with_hostile_ids_and_reasons(world, command, workflow_id, reason):
    size = _history_size(world, "victim-finished")
    argv = [command] + ([f"--reason={reason}"] if reason is not None else []) + ["--", workflow_id]
    outcome = world.lf(*argv)
    assert_documented(outcome)
    assert outcome.code != 0, str(outcome)  # nothing but a finished workflow to act on
    assert _history_size(world, "victim-finished") == size, str(outcome)
    assert world.workflow_entries() == world.baseline, str(outcome)
    world.assert_outside_untouched(outcome)


@fuzz_settings(60)
@given(command=st.sampled_from(["cancel", "terminate", "signal"]), reason=hostile_text | hostile_json)
def test_a_running_workflow_takes_or_refuses_a_hostile_reason_or_payload_whole(world, command, reason):
    """On a live workflow: the reason (or signal data) is recorded whole or refused with nothing appended."""
    created = world.lf("start", "Waiter")
    assert created.code == 0, str(created)
    workflow_id = created.out.split()[0]
    try:
        size = _history_size(world, workflow_id)
        extra = [f"--data={reason}", "--", workflow_id, "approve"] if command == "signal" else \
            [f"--reason={reason}", workflow_id]
        outcome = world.lf(command, *extra)
        assert_documented(outcome)
        assert (_history_size(world, workflow_id) > size) == (outcome.code == 0), str(outcome)
        shown = world.lf("history", workflow_id, "--json")
        assert_documented(shown, {0})
        if outcome.code == 0 and command != "signal":
            recorded = [e.get("reason") for e in json.loads(shown.out) if "reason" in e]
            assert reason in recorded, str(outcome)
    finally:
        remove_workflow(world, workflow_id)
    world.assert_outside_untouched(outcome)


# --- lf inspect, lf history, lf list, lf logs ------------------------------------------------------------


@fuzz_settings(200)
@given(command=st.sampled_from(["inspect", "history", "logs", "export"]),
       workflow_id=hostile_text, as_json=st.booleans(),
       seq=st.none() | st.sampled_from(["0", "-1", "1", "99999", "9" * 5000, "1e3", "x", "\x00"]))
def test_read_commands_with_hostile_ids(world, command, workflow_id, as_json, seq):
    argv = [command]
    if as_json and command in ("inspect", "history"):
        argv.append("--json")
    if seq is not None and command in ("inspect", "history"):
        argv.append(f"{'--at' if command == 'inspect' else '--upto'}={seq}")
    outcome = world.lf(*argv, "--", workflow_id)
    assert_documented(outcome)
    assert outcome.code != 0, str(outcome)  # no such workflow, or not an id
    world.assert_outside_untouched(outcome)


@fuzz_settings(60)
@given(seq=st.integers(-2, 40) | st.sampled_from([10**40, -(10**40)]), as_json=st.booleans(),
       command=st.sampled_from(["inspect", "history"]))
def test_time_travel_to_any_seq_is_an_answer_or_one_line(world, seq, as_json, command):
    argv = [command, "waiting", f"{'--at' if command == 'inspect' else '--upto'}={seq}"] + (["--json"] if as_json else [])
    outcome = world.lf(*argv)
    assert_documented(outcome)
    world.assert_outside_untouched(outcome)


@fuzz_settings(100)
@given(flow=st.none() | hostile_text, status=st.none() | hostile_text | st.sampled_from(["running", "held"]),
       limit=st.none() | st.sampled_from(["0", "-5", "1", "9" * 5000, "x", "1.5"]), as_json=st.booleans())
def test_list_with_hostile_filters(world, flow, status, limit, as_json):
    argv = ["list"] + ([f"--flow={flow}"] if flow is not None else []) + (
        [f"--status={status}"] if status is not None else []) + ([f"--limit={limit}"] if limit is not None else [])
    outcome = world.lf(*argv, *(["--json"] if as_json else []))
    assert_documented(outcome)
    if as_json and outcome.code == 0:
        json.loads(outcome.out)
    world.assert_outside_untouched(outcome)


@fuzz_settings(40)
@given(home=st.sampled_from(["missing/deeper", "a-file", "a-file/below", ".", "link-to-outside"]),
       command=st.sampled_from([("list",), ("start", "Fz"), ("inspect", "x"), ("signal", "x", "approve")]))
def test_a_hostile_home(world, home, command, tmp_path_factory):
    """--home naming something that is not a home: a missing folder is made (start) or empty (reads);
    a file, one clear line; a symlink to a folder outside is the user's choice of home (var/ may live there),
    but nothing else outside may change."""
    base = world.home / "homes"
    base.mkdir(exist_ok=True)
    (base / "a-file").write_text("x")
    if not os.path.lexists(base / "link-to-outside"):
        os.symlink(world.elsewhere, base / "link-to-outside")
    outcome = world.lf("--home", str(base / home), *command, home=False)
    assert_documented(outcome)
    world.assert_outside_untouched(outcome)


# --- the real process: argv as bytes, exit status, stderr ------------------------------------------------------

PROCESS_CASES = [
    ("start", b"../x"), ("start", b"/etc/passwd"), ("start", b"Fz", b"--id", b"../../outside"),
    ("start", b"Fz", b"-i", b"a=\xff\xfe"), ("start", b"Fz", b"-i", b"\xff=1"), ("start", b"Fz", b"--input", b"{\"a\": NaN}"),
    ("start", b"Fz", b"--input", ("[" * 10_000).encode()), ("start", b"Fz", b"--id", b"\xc3\x28"),
    ("start", b"Fz", b"--input", b'{"a": "\xed\xa0\x80"}'), ("start", b"Fz", b"-i", b"b=" + b"x" * 100_000),
    ("signal", b"waiting", b"approve", b"--data", b"\xff"), ("signal", b"waiting", b"\xff\xfe"),
    ("signal", b"waiting", b"approve", b"--data", b"Infinity"), ("signal", b"waiting", b"approve", b"--data", b"1e999"),
    ("signal", b"waiting", b"approve", b"--data", ("{\"a\":" * 10_000).encode()),
    ("cancel", b"--reason", b"\xff\xfe", b"waiting-not"), ("cancel", b"\xe2\x80\xae"), ("inspect", b"\xff"),
    ("history", b"-x"), ("list", b"--flow", b"\xff"), ("inspect", b"a" * 10_000), ("history", b"../outside"),
]


@pytest.mark.parametrize("argv", PROCESS_CASES, ids=lambda a: ascii(b" ".join(os.fsencode(x) for x in a)[:40]))
def test_the_real_cli_with_argv_bytes(world, argv):
    before = world.workflow_entries()
    outcome = world.lf_process(*argv)
    assert_documented(outcome)
    after = world.workflow_entries()
    if outcome.code == 0 and argv[0] == "start":
        for workflow_id in after - before:
            remove_workflow(world, workflow_id)
    else:
        assert after == before, str(outcome)
    world.assert_outside_untouched(outcome)
