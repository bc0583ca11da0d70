"""`lf`'s conventions as a user meets them (issue 13), with the real CLI in temp homes.

Fixed-width rendering, honest lists, short ids, exit codes, "did you mean", help with
examples that parse, completion in a real bash, human wording, delete/prune, and
docs/cli.md held to what the commands do: every ```console line runs and exits as the
page says, and every `-o json` shape equals the page's table for it.

Homes are shared per module (each test only adds workflows with ids of its own) and
workflows run with `lf run` of quick flows: no supervisor is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "cli.md"
BIN = Path(sys.executable).parent
BOX = set("─│┃━┏┓┗┛╭╮╰╯┡┩")
ANSI = re.compile(r"\x1b\[")


def lf(home: Path, *args: str, cwd: Path | None = None, env: dict | None = None, home_flag: bool = True,
       timeout: float = 60) -> subprocess.CompletedProcess:
    """The real `lf` (as `python -m localflow`), output piped, as a script runs it."""
    full = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    full.update({"COLUMNS": "200", **(env or {})})
    head = ["--home", str(home)] if home_flag else []
    return subprocess.run([sys.executable, "-m", "localflow", *head, *args], capture_output=True, text=True,
                          cwd=cwd or home, env=full, timeout=timeout)


def ok(home: Path, *args: str, **kw) -> str:
    done = lf(home, *args, **kw)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def as_json(home: Path, *args: str):
    return json.loads(ok(home, *args, "-o", "json"))


def new_home(root: Path, name: str) -> Path:
    home = root / name
    shutil.copytree(REPO / "flows", home / "flows")
    return home


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-doc-")


@pytest.fixture(scope="module")
def home(root) -> Path:
    """Quick workflows of every kind: completed, failed, a parent with its child, waiting ones."""
    home = new_home(root, "shared")
    assert lf(home, "run", "Branching", "--id", "br-1").returncode == 0
    assert lf(home, "run", "CatchErrors", "--id", "catch-1").returncode == 0
    assert lf(home, "run", "SagaRefund", "--id", "saga-1").returncode == 1
    assert lf(home, "run", "ParentFlow", "--id", "par").returncode == 0
    ok(home, "start", "Approval", "--id", "wait-1")
    ok(home, "start", "Approval")  # an id of the generated shape, with a random tail
    return home


@pytest.fixture(scope="module")
def crowd(root) -> Path:
    """60 workflows (started through the Python API, as a program would): more than a page."""
    from localflow.client import Client

    home = new_home(root, "crowd")
    client = Client(home)
    for n in range(30):
        client.start("Approval", id=f"early-{n:02d}")
    time.sleep(0.05)
    cut = time.time()
    time.sleep(0.05)
    for n in range(30):
        client.start("Branching", id=f"late-{n:02d}")
    (home / "cut").write_text(repr(cut))
    return home


# --- fixed-width rendering and piped text ------------------------------------------------


@pytest.mark.parametrize("columns", ["80", "200"])
def test_list_never_cuts_an_id_at_any_width(home, columns):
    ids = [r["id"] for r in as_json(home, "list")]
    text = ok(home, "list", env={"COLUMNS": columns})
    for workflow_id in ids:
        assert workflow_id in text.split(), (workflow_id, text)
    assert "…" not in text
    header = text.splitlines()[0].split()
    assert header[0] == "ID"
    if columns == "80":
        assert "ENDED" not in header  # a column went, not the ids
    else:
        assert header == ["ID", "FLOW", "STATUS", "STEP", "STARTED", "ENDED"]


def test_piped_list_is_plain_rows_awk_can_read(home):
    text = ok(home, "list")
    assert not BOX & set(text) and not ANSI.search(text)
    firsts = [line.split()[0] for line in text.splitlines() if line.strip()]
    assert firsts == ["ID"] + [r["id"] for r in as_json(home, "list")]
    assert "times in" not in text  # no caption when piped


@pytest.mark.parametrize("args", [("inspect", "catch-1"), ("history", "saga-1"), ("count", "--by", "flow")])
def test_other_piped_views_have_no_box_or_colour(home, args):
    text = ok(home, *args)
    assert not BOX & set(text) and not ANSI.search(text), text


def test_piped_schedule_list_has_no_box_characters(root):
    home = new_home(root, "sched-plain")
    ok(home, "schedule", "add", "nightly", "Branching", "--cron", "0 2 * * *")
    text = ok(home, "schedule", "list")
    assert not BOX & set(text), text


# --- honest lists ---------------------------------------------------------------------------


def test_list_says_how_many_it_does_not_show_on_stderr_when_piped(crowd):
    done = lf(crowd, "list")
    assert len(done.stdout.splitlines()) == 51  # header + 50
    assert "showing 50 of 60" in done.stderr and "showing" not in done.stdout
    assert "--offset 50" in done.stderr
    everything = ok(crowd, "list", "--limit", "0", "-q").split()
    assert len(everything) == 60
    page = lf(crowd, "list", "--limit", "5", "--offset", "10", "-q")
    assert page.stdout.split() == everything[10:15]
    assert "showing" not in page.stderr  # -q: data only, for scripts
    assert "showing 11-15 of 60" in lf(crowd, "list", "--limit", "5", "--offset", "10").stderr


def test_list_filters_combine(crowd, home):
    assert len(as_json(crowd, "list", "--status", "running", "--limit", "0")) == 60
    statuses = {r["status"] for r in as_json(home, "list", "--status", "completed", "--status", "failed")}
    assert statuses == {"completed", "failed"}
    cut = float((crowd / "cut").read_text())
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut)) + f".{int(cut * 1000) % 1000:03d}Z"
    later = ok(crowd, "list", "--since", since, "--limit", "0", "-q").split()
    earlier = ok(crowd, "list", "--until", since, "--limit", "0", "-q").split()
    assert sorted(later) == [f"late-{n:02d}" for n in range(30)]
    assert sorted(earlier) == [f"early-{n:02d}" for n in range(30)]
    assert len(ok(crowd, "list", "--since", "1h", "--limit", "0", "-q").split()) == 60
    assert ok(crowd, "list", "--until", "1h", "-q").split() == []
    assert ok(home, "list", "--parent", "par", "-q").split() == ["par.greet"]
    assert as_json(crowd, "count", "--by", "flow") == [{"flow": "Approval", "count": 30},
                                                       {"flow": "Branching", "count": 30}]


def test_count_by_status_agrees_with_list(home):
    rows = as_json(home, "list", "--limit", "0")
    counted = {r["status"]: r["count"] for r in as_json(home, "count", "--by", "status")}
    expected: dict = {}
    for row in rows:
        expected[row["status"]] = expected.get(row["status"], 0) + 1
    assert counted == expected
    assert ok(home, "count").strip() == str(len(rows))
    text = ok(home, "count", "--by", "status").splitlines()
    assert text[0].split() == ["STATUS", "COUNT"] and len(text) == len(counted) + 1


# --- JSON shapes against docs/cli.md ---------------------------------------------------------


def doc_shapes() -> dict[str, dict]:
    """Each `### name` under "## JSON shapes": its shape, openness, and {path: (types, optional)}."""
    text = DOC.read_text(encoding="utf-8")
    part = text[text.index("\n## JSON shapes"):]
    shapes = {}
    for section in re.split(r"\n### ", part)[1:]:
        name, _, body = section.partition("\n")
        shape = re.search(r"Shape: (object|array)", body)
        fields = {}
        for m in re.finditer(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]*) \|$", body, flags=re.M):
            types = {t.strip() for t in m.group(2).split(" or ")}
            fields[m.group(1)] = (types, m.group(3).strip().startswith(("*Only*", "Only")))
        shapes[name.strip()] = {"shape": shape.group(1) if shape else None, "open": "Open: yes" in body,
                                "fields": fields}
    return shapes


_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list,
          "null": type(None)}


def _type_ok(value, types: set[str]) -> bool:
    if "any" in types:
        return True
    for t in types:
        if t in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, _TYPES[t]):
            return True
    return False


def check_shape(name: str, value, shapes: dict | None = None) -> None:
    """``value`` (a command's -o json output) has exactly the fields docs/cli.md lists for ``name``."""
    spec = (shapes or doc_shapes())[name]
    assert spec["shape"] == ("array" if isinstance(value, list) else "object"), (name, spec["shape"])
    rows = value if isinstance(value, list) else [value]
    for row in rows:
        _check_level(name, row, "", spec)


def _check_level(name: str, obj: dict, prefix: str, spec: dict) -> None:
    level = {p[len(prefix):]: v for p, v in spec["fields"].items()
             if p.startswith(prefix) and "." not in p[len(prefix):] and "[]" not in p[len(prefix):]}
    if not level:
        return  # an object the page describes in words only
    required = {k for k, (_, optional) in level.items() if not optional}
    keys = set(obj)
    if prefix == "" and spec["open"]:
        assert required <= keys, (name, required - keys)
    else:
        assert required <= keys <= set(level), (name, prefix, "missing", required - keys, "undocumented",
                                                keys - set(level))
    for key in keys & set(level):
        assert _type_ok(obj[key], level[key][0]), (name, prefix + key, obj[key], level[key][0])
        if isinstance(obj[key], dict):
            _check_level(name, obj[key], f"{prefix}{key}.", spec)
        elif isinstance(obj[key], list):
            for item in obj[key]:
                if isinstance(item, dict):
                    _check_level(name, item, f"{prefix}{key}[].", spec)


def test_the_doc_has_a_shape_for_every_command_that_prints_data():
    shapes = doc_shapes()
    wanted = {"list", "count", "count --by", "inspect", "history", "start", "run", "signal", "cancel", "terminate",
              "delete", "prune", "graph", "validate", "replay", "fsck", "schedule list", "import", "resume", "fork"}
    assert wanted <= set(shapes), wanted - set(shapes)
    for name in wanted - {"run"}:
        assert shapes[name]["shape"] and shapes[name]["fields"], name


@pytest.fixture(scope="module")
def shapes_home(root) -> Path:
    return new_home(root, "shapes")


def test_json_shapes_of_reads_match_the_doc(home):
    shapes = doc_shapes()
    check_shape("list", as_json(home, "list"), shapes)
    check_shape("count", as_json(home, "count"), shapes)
    check_shape("count --by", as_json(home, "count", "--by", "status"), shapes)
    check_shape("count --by", as_json(home, "count", "--by", "flow"), shapes)
    for workflow_id in ("br-1", "catch-1", "saga-1", "par", "par.greet", "wait-1"):
        check_shape("inspect", as_json(home, "inspect", workflow_id), shapes)
        check_shape("history", as_json(home, "history", workflow_id), shapes)
    check_shape("graph", as_json(home, "graph", "Branching"), shapes)
    check_shape("validate", as_json(home, "validate", "flows/PurchaseFlow.flow"), shapes)
    check_shape("replay", as_json(home, "replay", "br-1", "saga-1"), shapes)
    fsck = lf(home, "fsck", "-o", "json")
    check_shape("fsck", json.loads(fsck.stdout), shapes)


def test_json_shapes_of_actions_match_the_doc(shapes_home, tmp_path):
    shapes, h = doc_shapes(), shapes_home
    bad = h / "flows" / "Bad.flow"
    bad.write_text("flow Bad\n  return nope\n")
    check_shape("validate", json.loads(lf(h, "validate", "flows/Bad.flow", "-o", "json").stdout), shapes)
    bad.unlink()
    check_shape("start", as_json(h, "start", "Approval", "--id", "s-1"), shapes)
    check_shape("signal", as_json(h, "signal", "s-1", "approve"), shapes)
    ok(h, "start", "Approval", "--id", "s-2")
    check_shape("cancel", as_json(h, "cancel", "s-2"), shapes)
    ok(h, "start", "Approval", "--id", "s-3")
    check_shape("terminate", as_json(h, "terminate", "s-3"), shapes)
    done = lf(h, "run", "SagaRefund", "--id", "f-1", "-o", "json")
    assert done.returncode == 1
    check_shape("inspect", json.loads(done.stdout), shapes)  # run -o json: the inspect object
    check_shape("fork", as_json(h, "fork", "f-1", "--last-failure", "--dry-run"), shapes)
    check_shape("fork", as_json(h, "fork", "f-1", "--at", "3", "--id", "f-1-fork"), shapes)
    (h / "flows" / "Boom.flow").write_text('flow Boom\n  step boom:\n    run ["sh", "-c", "exit 3"]\n')
    assert lf(h, "run", "Boom", "--id", "boom-1").returncode == 1
    check_shape("resume", as_json(h, "resume", "boom-1"), shapes)
    ok(h, "schedule", "add", "nightly", "Branching", "--cron", "0 2 * * *")
    check_shape("schedule list", as_json(h, "schedule", "list"), shapes)
    assert lf(h, "run", "ParentFlow", "--id", "p-1").returncode == 0
    bundle = tmp_path / "p.bundle.jsonl"
    ok(h, "export", "p-1", "--to", str(bundle))
    check_shape("delete", as_json(h, "delete", "p-1"), shapes)
    check_shape("import", as_json(h, "import", str(bundle)), shapes)
    assert lf(h, "run", "Branching", "--id", "old-1").returncode == 0
    check_shape("prune", as_json(h, "prune", "--older", "0s", "--dry-run"), shapes)
    nondeterministic = _nondeterministic(h)
    replayed = lf(h, "replay", nondeterministic, "--flow", "edited/Two.flow", "-o", "json")
    assert replayed.returncode == 4, replayed.stderr
    check_shape("replay", json.loads(replayed.stdout), shapes)


def _nondeterministic(home: Path) -> str:
    """A completed workflow and an edit of its flow that would decide differently."""
    (home / "flows" / "Two.flow").write_text('flow Two\n  step a:\n    run ["echo", "1"]\n  return a.result\n')
    assert lf(home, "run", "Two", "--id", "two-1").returncode == 0
    (home / "edited").mkdir(exist_ok=True)
    (home / "edited" / "Two.flow").write_text('flow Two\n  step b:\n    run ["echo", "1"]\n  return b.result\n')
    return "two-1"


@pytest.mark.parametrize("args", [("list",), ("count", "--by", "status"), ("history", "saga-1"),
                                  ("inspect", "saga-1"), ("validate",), ("replay", "br-1", "saga-1")])
def test_jsonl_ids_and_tsv_derive_from_json(home, args):
    value = as_json(home, *args)
    rows = value if isinstance(value, list) else [value]
    jsonl = [json.loads(line) for line in ok(home, *args, "-o", "jsonl").splitlines()]
    assert jsonl == rows
    tsv = ok(home, *args, "-o", "tsv").splitlines()
    header = tsv[0].split("\t")
    assert len(tsv) == len(rows) + 1
    for row, line in zip(rows, tsv[1:]):
        cells = dict(zip(header, line.split("\t")))
        assert set(header) >= set(row), set(row) - set(header)
        for key, cell in cells.items():
            expected = row.get(key)
            if expected is None:
                assert cell == ""
            elif isinstance(expected, bool):
                assert cell == ("true" if expected else "false")
            elif isinstance(expected, (dict, list)):
                assert json.loads(tsv_unescape(cell)) == expected
            elif isinstance(expected, str):
                assert tsv_unescape(cell) == expected
            else:
                assert cell == str(expected)
    if args[0] in ("list", "inspect", "replay"):
        assert ok(home, *args, "-o", "ids").split() == [r["id"] for r in rows]


def tsv_unescape(cell: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), cell)


def test_q_is_ids_and_json_is_o_json(home):
    assert ok(home, "list", "-q") == ok(home, "list", "-o", "ids")
    assert ok(home, "list", "--json") == ok(home, "list", "-o", "json")


# --- id resolution ----------------------------------------------------------------------------


def test_ids_resolve_exact_prefix_tail_and_last(home):
    assert as_json(home, "inspect", "par")["id"] == "par"  # exact, though par.greet starts with it
    assert as_json(home, "inspect", "pa")["id"] == "par"  # a parent and its own children: the parent
    assert as_json(home, "inspect", "par.g")["id"] == "par.greet"
    assert as_json(home, "inspect", "catch")["id"] == "catch-1"  # a unique prefix
    generated = next(r["id"] for r in as_json(home, "list") if r["id"].startswith("Approval-"))
    tail = generated.rsplit("-", 1)[1]
    assert as_json(home, "inspect", tail[:4])["id"] == generated
    newest = [r for r in as_json(home, "list") if r["parent"] is None][0]["id"]
    assert as_json(home, "inspect", "@last")["id"] == newest


def test_ambiguous_id_is_a_usage_error_listing_candidates_and_unknown_is_not_found(home):
    ok(home, "start", "Approval", "--id", "amb-one")
    ok(home, "start", "Approval", "--id", "amb-two")
    done = lf(home, "inspect", "amb")
    assert done.returncode == 2, done.stderr
    assert "amb-one" in done.stderr and "amb-two" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.index("amb-two") < done.stderr.index("amb-one")  # newest first
    missing = lf(home, "inspect", "zz-no-such")
    assert missing.returncode == 5 and "no workflow 'zz-no-such'" in missing.stderr


# --- exit codes -------------------------------------------------------------------------------


def test_exit_codes_are_distinct_and_as_the_table_says(root):
    from localflow.errors import EXIT_CODE_TABLE

    codes = [code for code, _ in EXIT_CODE_TABLE]
    assert len(codes) == len(set(codes))
    h = new_home(root, "exits")
    assert lf(h, "run", "SagaRefund", "--id", "x-failed").returncode == 1
    assert lf(h, "list", "--bogus").returncode == 2
    assert lf(h, "inspect", "nope").returncode == 5
    assert lf(h, "run", "NoSuchFlow").returncode == 5
    assert lf(h, "cancel", "x-failed").returncode == 6  # it has ended
    assert lf(h, "start", "Branching", "--id", "x-failed").returncode == 6  # the id exists
    two = _nondeterministic(h)
    assert lf(h, "replay", two, "--flow", "edited/Two.flow").returncode == 4
    table = ok(h, "--help", home_flag=False)
    for code, text in EXIT_CODE_TABLE:
        assert re.search(rf"^  {code}\s+{re.escape(text)}$", table, flags=re.M), (code, text)
    doc = DOC.read_text(encoding="utf-8")
    for code, text in EXIT_CODE_TABLE:
        assert f"| {code} | {text} |" in doc, (code, text)


def test_a_refused_resume_exits_6(root):
    h = new_home(root, "resume-refused")
    assert lf(h, "run", "SagaRefund", "--id", "undone").returncode == 1
    refused = lf(h, "resume", "undone")
    assert "cannot resume undone: its compensations ran" in refused.stderr
    assert refused.returncode == 6


# --- mistakes, the home, typed inputs ----------------------------------------------------------


def test_did_you_mean_and_hints(home):
    typo = lf(home, "lsit")
    assert typo.returncode == 2 and "did you mean 'list'?" in typo.stderr
    flow = lf(home, "run", "purchaseflow")
    assert flow.returncode == 5 and "Did you mean PurchaseFlow?" in flow.stderr
    bare = lf(home, "start", "PurchaseFlow", "order_id=A-1")
    assert bare.returncode == 2 and "to give an input, use -i: -i order_id=A-1" in bare.stderr


def test_home_after_the_command_from_inside_flows_and_a_missing_home(home):
    after = lf(home, "list", "--home", str(home), "-q", home_flag=False, cwd=home.parent)
    assert after.returncode == 0 and "br-1" in after.stdout.split()
    inside = lf(home, "list", "-q", home_flag=False, cwd=home / "flows" / "examples",
                env={"LOCALFLOW_HOME": ""})
    assert inside.returncode == 0 and "br-1" in inside.stdout.split()
    missing = lf(home, "--home", "/nonexistent/cli-doc-home", "list", home_flag=False)
    assert missing.returncode == 2 and "no such folder" in missing.stderr


def test_fsck_finds_its_home_like_every_other_command(home):
    assert lf(home, "--home", "/nonexistent/cli-doc-home", "fsck", home_flag=False).returncode == 2
    inside = lf(home, "fsck", "-o", "json", home_flag=False, cwd=home / "flows", env={"LOCALFLOW_HOME": ""})
    assert json.loads(inside.stdout)["home"] == str(home)


def test_inputs_are_typed_by_the_flows_defaults(home):
    refused = lf(home, "start", "PurchaseFlow", "-i", "amount=abc")
    assert refused.returncode == 2 and "is a number" in refused.stderr
    ok(home, "start", "PurchaseFlow", "-i", "order_id=123", "--id", "typed-1")
    assert as_json(home, "inspect", "typed-1")["input"] == {"order_id": "123", "amount": 42.0}


# --- help ----------------------------------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser, path: tuple = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield path + (name,), child
                yield from _subparsers(child, path + (name,))


def lf_commands(line: str) -> list[list[str]]:
    """The `lf ...` command lines inside a shell line (after `&&`, `|`, `$(`, `<(`...)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words, found = list(lexer), []
    segment: list[str] = []
    for word in words + [";"]:
        if word and set(word) <= set("|&;<>()"):
            if segment and segment[0] == "lf":
                found.append(segment[1:])
            segment = []
        else:
            segment.append(word[2:] if word.startswith("$(") else word)
    return [[w for w in cmd] for cmd in found]


def test_every_subcommand_has_a_description_and_examples_that_parse():
    from localflow.cli.main import build_parser

    parser = build_parser()
    walked = list(_subparsers(parser))
    assert len(walked) >= 25
    for path, child in walked:
        assert child.description and child.description.strip(), path
        epilog = child.epilog or ""
        assert "examples:" in epilog, path
        examples = [line.strip() for line in epilog.split("examples:", 1)[1].splitlines() if "lf " in line]
        assert examples, path
        for line in examples:
            commands = lf_commands(line)
            assert commands, (path, line)
            for words in commands:
                try:
                    build_parser().parse_args(words)
                except SystemExit as exc:  # argparse's error
                    pytest.fail(f"`lf {' '.join(path)} --help` example does not parse: {line} ({exc})")


def test_help_examples_name_flows_that_exist():
    from localflow.cli.main import build_parser

    flows = {p.stem for p in (REPO / "flows").rglob("*.flow")}
    for path, child in _subparsers(build_parser()):
        if path[-1] not in ("start", "run", "graph"):
            continue
        for line in (child.epilog or "").splitlines():
            for words in lf_commands(line):
                if words and words[0] == path[-1] and len(words) > 1 and not words[1].startswith("-"):
                    assert words[1] in flows or words[1].endswith(".flow"), line


# --- completion ----------------------------------------------------------------------------------


def _bash_complete(home: Path, *words: str) -> list[str]:
    script = ok(home, "completion", "bash")
    quoted = " ".join(shlex.quote(w) for w in ("lf", *words))
    program = (f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words)}; _lf_complete\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "LOCALFLOW_HOME": str(home)}
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, cwd=home, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None or not (BIN / "lf").exists(), reason="needs bash and the lf script")
def test_bash_completion_completes_commands_flows_ids_and_signals(home):
    assert "inspect" in _bash_complete(home, "ins")
    assert set(_bash_complete(home, "li")) == {"list"}
    assert "PurchaseFlow" in _bash_complete(home, "run", "Purch")
    assert _bash_complete(home, "inspect", "catch") == ["catch-1"]
    assert "@last" in _bash_complete(home, "inspect", "")
    assert _bash_complete(home, "signal", "wait-1", "") == ["approve"]
    assert "--status" in _bash_complete(home, "list", "--st")


def test_complete_helper_serves_zsh_and_fish_the_same_candidates(home):
    assert ok(home, "__complete", "sig", home_flag=False).split() == ["signal"]
    assert "Branching" in ok(home, "__complete", "--home", str(home), "graph", "Bra", home_flag=False).split()
    assert ok(home, "__complete", "--home", str(home), "signal", "wait-1", "", home_flag=False).split() == ["approve"]
    assert ok(home, "__complete", "list", "--status", "fa", home_flag=False).split() == ["failed"]
    broken = lf(home, "__complete", "signal", "no-such-id", "", home_flag=False)
    assert broken.returncode == 0 and broken.stdout == "" and broken.stderr == ""


@pytest.mark.parametrize("shell,check", [("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"])])
def test_zsh_and_fish_scripts_parse(home, tmp_path, shell, check):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here; `lf __complete` (what its script calls) is tested above")
    script = tmp_path / f"lf.{shell}"
    script.write_text(ok(home, "completion", shell))
    done = subprocess.run([*check, str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


# --- human wording -------------------------------------------------------------------------------


def test_a_workflow_waiting_on_a_signal_says_so_and_how_to_answer(home):
    text = ok(home, "inspect", "wait-1")
    assert "waiting for" in text and "signal 'approve'" in text
    assert f"lf --home {home} signal wait-1 approve --data" in text  # as typed: with the --home it was given
    assert as_json(home, "inspect", "wait-1")["waiting_for"] == [{"signal": "approve", "at": "approval",
                                                                  "timeout_at": None}]


@pytest.mark.parametrize("workflow_id", ["br-1", "catch-1"])
def test_history_shows_no_internal_keys(home, workflow_id):
    text = ok(home, "history", workflow_id) + ok(home, "history", workflow_id, "--time-format", "relative")
    for internal in ("then0", "then1", "catch 0", "catch 1", "if-1", "sleep-1", "undo nothing to undo"):
        assert internal not in text, (internal, text)
    if workflow_id == "br-1":
        assert "took elif branch 1 (line 7)" in text
    else:
        assert "handled by `catch exit 3:` (line 7)" in text


def test_saga_history_names_the_undo_steps(home):
    text = ok(home, "history", "saga-1")
    assert "undo nothing to undo" not in text and "card declined" in text


# --- delete and prune ------------------------------------------------------------------------------


def test_delete_refuses_a_running_workflow_without_force(root):
    h = new_home(root, "delete")
    ok(h, "start", "Approval", "--id", "d-1")
    refused = lf(h, "delete", "d-1")
    assert refused.returncode == 6 and "--force" in refused.stderr
    assert (h / "var" / "workflows" / "d-1").is_dir()
    assert json.loads(ok(h, "delete", "d-1", "--force", "-o", "json")) == [{"id": "d-1"}]
    assert not (h / "var" / "workflows" / "d-1").exists()
    assert lf(h, "inspect", "d-1").returncode == 5


def test_delete_takes_the_children_with_the_parent(root):
    h = new_home(root, "delete-tree")
    assert lf(h, "run", "ParentFlow", "--id", "tree").returncode == 0
    assert {r["id"] for r in as_json(h, "delete", "tree")} == {"tree", "tree.greet"}
    assert ok(h, "list", "-q") == ""


def test_prune_dry_run_lists_then_prune_deletes(root):
    h = new_home(root, "prune")
    assert lf(h, "run", "Branching", "--id", "pr-1").returncode == 0
    assert lf(h, "run", "SagaRefund", "--id", "pr-failed").returncode == 1
    ok(h, "start", "Approval", "--id", "pr-running")
    dry = ok(h, "prune", "--older", "0s", "--dry-run")
    assert "would delete pr-1" in dry and "pr-failed" not in dry and "pr-running" not in dry
    assert (h / "var" / "workflows" / "pr-1").is_dir()
    assert ok(h, "prune", "--older", "1d", "-q") == ""  # ended just now: not older than a day
    assert ok(h, "prune", "--older", "0s", "-q").split() == ["pr-1"]
    assert sorted(ok(h, "list", "-q").split()) == ["pr-failed", "pr-running"]


def test_prune_dry_run_summary_reads_well(root):
    h = new_home(root, "prune-words")
    assert lf(h, "run", "Branching", "--id", "pw-1").returncode == 0
    last = ok(h, "prune", "--older", "0s", "--dry-run").splitlines()[-1]
    assert last.startswith("1 workflow would be deleted"), last


# --- every example of docs/cli.md runs --------------------------------------------------------------


def doc_console_lines() -> list[tuple[str, int]]:
    """Every `$ lf ...` line of the ```console blocks of docs/cli.md, with the exit code it expects."""
    text = DOC.read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.splitlines():
            if not line.startswith("$ "):
                continue
            command = line[2:]
            expected = re.search(r"\s#\s*exit (\d+)\s*$", command)
            lines.append((command, int(expected.group(1)) if expected else 0))
    return lines


def test_every_console_example_of_the_doc_runs_as_the_doc_says(root):
    h = new_home(root, "doc-walk")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "COLUMNS": "100", "LOCALFLOW_HOME": str(h)}
    lines = doc_console_lines()
    assert len(lines) >= 60
    failures = []
    for command, expected in lines:
        assert command.startswith("lf "), command
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=h, env=env, timeout=60)
        if done.returncode != expected or "Traceback" in done.stderr:
            failures.append(f"{command}: exit {done.returncode}, expected {expected}: {done.stderr.strip()[-300:]}")
    assert not failures, "\n".join(failures)


def test_sh_examples_of_the_doc_parse():
    from localflow.cli.main import build_parser

    text = DOC.read_text(encoding="utf-8")
    seen = 0
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.splitlines():
            for words in lf_commands(line):
                build_parser().parse_args(words)
                seen += 1
    assert seen >= 2
