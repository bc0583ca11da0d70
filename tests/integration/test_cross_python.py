"""The expression language and replay give byte-identical results under Python 3.10, 3.11, 3.12 and 3.13.

Each supported interpreter found on this machine (pyenv, or python3.X on PATH) runs
the same corpus in a subprocess: the table of tests/unit/test_builtins_determinism.py,
a few thousand seeded random expressions, Unicode digests of upper()/lower()/int()
over every code point, and a replay of every golden history in tests/golden/histories
(its final state in full, as a digest, or where and how it diverges). Their outputs must be
byte-identical to this interpreter's. The subprocess runs with ``-S`` (no site-packages)
and ``PYTHONPATH=<repo>``: what it imports (localflow.core, localflow.dsl and the history
reader) must need nothing but the standard library. Each interpreter gets a different
PYTHONHASHSEED, so nothing may depend on hashing either.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSIONS = ["3.10", "3.11", "3.12", "3.13"]
CURRENT = f"{sys.version_info[0]}.{sys.version_info[1]}"

RUNNER = r'''
import dataclasses, hashlib, json, sys
from pathlib import Path
from localflow import dsl, ir
from localflow.core import events as ev
from localflow.core.expr import compile_expr, evaluate
from localflow.core.expr_eval import change_case, read_int
from localflow.core.replay import replay
from localflow.core.state import fold
from localflow.errors import ExpressionError, NondeterminismError
from localflow.store import history

def decode(value):
    if isinstance(value, dict):
        if set(value) == {"$int"}:
            return int(value["$int"], 16)
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value

def show(value):
    return json.dumps(value, sort_keys=True, ensure_ascii=True)

def run_case(source, env, exact_refusal):
    expr = ir.Expr(source, 1, 1)
    try:
        compile_expr(expr)
    except ExpressionError as exc:
        return show({"refused": exc.message if exact_refusal else True,
                     "at": [exc.line, exc.col] if exact_refusal else None})
    try:
        return show({"ok": evaluate(expr, decode(env))})
    except ExpressionError as exc:
        return show({"error": exc.message, "at": [exc.line, exc.col]})

def digest(text):
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

def unicode_digests():
    chars = [chr(cp) for cp in range(0x110000)]
    every = "\x00".join(chars)
    # final sigma: what follows it (cased, case-ignorable or neither) decides its form
    context = "\x00".join(f"A\u03a3{c}\x00A\u03a3{c}B" for c in chars)
    digits = []
    for c in chars:
        if c.isdecimal():
            try:
                digits.append(f"{ord(c):x}={read_int(c)}")
            except ValueError:
                pass
    return {"lower": digest(change_case(every, upper=False)), "upper": digest(change_case(every, upper=True)),
            "sigma": digest(change_case(context, upper=False)), "digits": digest(" ".join(digits))}

def plain(value):
    """The whole of a state as JSON, fields in order (dict order is insertion order: no hashing)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [type(value).__name__] + [[f.name, plain(getattr(value, f.name))] for f in dataclasses.fields(value)]
    if isinstance(value, dict):
        return {"$dict": [[plain(k), plain(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    assert value is None or isinstance(value, (str, int, float)), type(value)
    return value

def golden(directory, flow_file):
    out = {}
    today = dsl.load_flow_file(Path(flow_file), "flows/PurchaseFlow.flow")
    for path in sorted(Path(directory).glob("*.jsonl")):
        events = [ev.from_record(r) for r in history.read(path).records]
        try:
            state = replay(events)
            if events[0].flow_name == today.name:
                replay(events, flow=today)
            whole = json.dumps(plain(state), ensure_ascii=True, allow_nan=False)
            out[path.name] = {"replays": state == fold(events), "status": state.status, "result": state.result,
                              "error": state.error, "last_seq": state.last_seq, "state": digest(whole)}
        except NondeterminismError as exc:
            out[path.name] = {"nondeterministic_at": exc.seq, "message": str(exc)}
    return out

job = json.load(sys.stdin)
lines = [run_case(*case) for case in job["cases"]]
lines.append(show({"unicode": unicode_digests()}))
lines.append(show({"golden": golden(job["histories"], job["flow"])}))
third_party = sorted(m for m in sys.modules if m.split(".")[0] in ("rich", "watchdog", "filelock"))
lines.append(show({"third_party": third_party}))
sys.stdout.write("\n".join(lines) + "\n")
'''


# --- finding the interpreters ------------------------------------------------------------


def find_python(version: str) -> tuple[str | None, str]:
    """The newest installed CPython ``version`` (e.g. "3.12"), or None and why not."""
    if version == CURRENT:
        return sys.executable, ""
    pattern = re.compile(rf"{re.escape(version)}\.\d+")
    pyenv = shutil.which("pyenv")
    if pyenv:
        listed = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True, check=False).stdout
        found = sorted((v for v in listed.split() if pattern.fullmatch(v)), key=lambda v: int(v.rsplit(".", 1)[1]))
        if found:
            prefix = subprocess.run([pyenv, "prefix", found[-1]], capture_output=True, text=True, check=False)
            python = Path(prefix.stdout.strip()) / "bin" / "python3"
            if prefix.returncode == 0 and python.exists():
                return str(python), ""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted((p for p in root.glob(f"{version}.*") if pattern.fullmatch(p.name)),
                        key=lambda p: int(p.name.rsplit(".", 1)[1])) if root.is_dir() else []
    if candidates and (candidates[-1] / "bin" / "python3").exists():
        return str(candidates[-1] / "bin" / "python3"), ""
    on_path = shutil.which(f"python{version}")
    if on_path:
        return on_path, ""
    return None, (f"Python {version} is not installed here (no pyenv version {version}.*, no python{version} "
                  f"on PATH); CI installs it")


# --- the corpus ------------------------------------------------------------------------------


def encode(value):
    """JSON for any env value: whole numbers beyond Python's digit limit travel as hex."""
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10_000:
        return {"$int": format(value, "x")}
    return value


def unit_table() -> list:
    spec = importlib.util.spec_from_file_location("builtins_table", REPO / "tests/unit/test_builtins_determinism.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return [(source, env or {}) for source, env, _ in module.CASES]


def random_numbers(r: random.Random, count: int) -> list:
    def number():
        pick = r.random()
        if pick < 0.25:
            return repr(r.randint(-100, 100))
        if pick < 0.35:
            return repr(r.randint(-2**70, 2**70))
        if pick < 0.65:
            return repr(r.uniform(-1000, 1000))
        if pick < 0.8:
            return repr(r.choice([0.1, 0.2, 0.3, -0.0, 0.5, 2.5, 1e16, 1e-300, 5e-324, 1.7976931348623157e308, 2.675]))
        return repr(round(r.uniform(-10, 10), r.randint(0, 4)))

    def expression(depth=0):
        pick = r.random()
        if depth > 3 or pick < 0.3:
            return number()
        if pick < 0.55:
            operator = r.choice(["+", "-", "*", "/", "//", "%", "**"])
            return f"({expression(depth + 1)} {operator} {expression(depth + 1)})"
        if pick < 0.65:
            return f"round({expression(depth + 1)}{', ' + str(r.randint(-5, 20)) if r.random() < 0.6 else ''})"
        if pick < 0.78:
            items = ", ".join(expression(depth + 1) for _ in range(r.randint(1, 8)))
            return f"{r.choice(['sum', 'sum', 'min', 'max', 'sorted'])}([{items}])"
        if pick < 0.86:
            return f"{r.choice(['int', 'float', 'abs', 'str'])}({expression(depth + 1)})"
        if pick < 0.9:
            return f"float(str({expression(depth + 1)}))"
        return f"json([{expression(depth + 1)}, {expression(depth + 1)}])"

    specs = ["", ".2f", ".0f", "e", ".3e", "g", ".12g", "%", ",", "_", ",.2f", "+", " ", "=+12.3f", "#x", "n", "z.2f",
             "z.0f", "z", ".1%", "010.4f", "^20", "*<15g", ".17g", ".20f", "#.0e", "c", "b", "d", "G", "E", "F", "_x"]
    out = []
    for _ in range(count):
        if r.random() < 0.3:
            out.append((f"f'{{{expression(1)}:{r.choice(specs)}}}'", {}))
        else:
            out.append((expression(), {}))
    return out


def random_fstrings(r: random.Random, count: int) -> list:
    atoms = ["{", "}", "{{", "}}", "x", "1", "'", '"', "'''", '"""', "!r", "!a", "!x", ":", ">5", ".2f", "=", "==",
             "!=", " ", "\n", "\\", "\\n", "#", "[", "]", "(", ")", "f'", 'f"', "y", "+", "z", ",", "é", "\U00010570",
             "\\N{LATIN SMALL LETTER A}", "lower(y)", "{x}", "{y:>{x}}", "{x:{x}{x}}", "a"]
    out = []
    for _ in range(count):
        quote = r.choice(["'", '"', "'''", '"""'])
        body = "".join(r.choice(atoms) for _ in range(r.randint(1, 8)))
        source = r.choice(["f", "F", "rf", "fr", "f", "f", ""]) + quote + body + quote
        if r.random() < 0.2:
            source += " " + r.choice(["'a'", "f'{x}'", "+ y", "y"])
        out.append((source, {"x": 3, "y": "s"}))
    return out


def corpus() -> list:
    r = random.Random(20260311)
    cases = [(s, encode(e), True) for s, e in unit_table()]
    cases += [(s, e, True) for s, e in random_numbers(r, 2500)]
    # random f-strings: acceptance and results must agree; the wording of Python's own
    # syntax errors differs between versions (and is never recorded in a history)
    cases += [(s, e, False) for s, e in random_fstrings(r, 2500)]
    return cases


# --- running it ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cases() -> list:
    return corpus()


@pytest.fixture(scope="module")
def outputs(cases) -> dict:
    """Each available interpreter's output (or None and why not), all run at once."""
    job = json.dumps({"cases": cases, "histories": str(REPO / "tests/golden/histories"),
                      "flow": str(REPO / "flows/PurchaseFlow.flow")})
    running, results = {}, {}
    for index, version in enumerate(VERSIONS):
        python, reason = find_python(version)
        if python is None:
            results[version] = (None, reason)
            continue
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": str(101 + index), "PYTHONIOENCODING": "utf-8"}
        running[version] = subprocess.Popen([python, "-S", "-c", RUNNER], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    for version, process in running.items():
        out, err = process.communicate(job.encode("utf-8"), timeout=600)
        if process.returncode != 0:
            results[version] = (None, f"FAILED: {process.args[0]} exited {process.returncode}:\n{err.decode()[-3000:]}")
        else:
            results[version] = (out.decode("utf-8"), "")
    return results


def output_of(outputs: dict, version: str) -> str:
    text, reason = outputs[version]
    if text is None:
        if reason.startswith("FAILED"):
            pytest.fail(reason)
        pytest.skip(reason)
    return text


def differences(cases: list, mine: str, theirs: str, limit: int = 10) -> str:
    ours, others = mine.splitlines(), theirs.splitlines()
    shown = []
    for index, (a, b) in enumerate(zip(ours, others)):
        if a != b and len(shown) < limit:
            what = repr(cases[index][0]) if index < len(cases) else "(digests, golden histories, imports)"
            shown.append(f"{what}\n    {CURRENT}: {a[:300]}\n    other: {b[:300]}")
    count = sum(a != b for a, b in zip(ours, others)) + abs(len(ours) - len(others))
    return f"{count} of {len(ours)} lines differ; the first:\n" + "\n".join(shown)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_interpreter_gives_byte_identical_results(cases, outputs, version):
    theirs = output_of(outputs, version)
    mine = output_of(outputs, CURRENT)
    assert theirs == mine, f"Python {version} differs from {CURRENT}: {differences(cases, mine, theirs)}"


@pytest.mark.parametrize("version", VERSIONS)
def test_golden_histories_replay_under_every_interpreter(outputs, version):
    lines = [json.loads(line) for line in output_of(outputs, version).splitlines()[-3:]]
    golden, third_party = lines[1]["golden"], lines[2]["third_party"]
    names = sorted(p.name for p in (REPO / "tests/golden/histories").glob("*.jsonl"))
    assert len(names) > 2 and sorted(golden) == names
    for name, outcome in golden.items():
        if name.endswith(".ok.jsonl"):
            assert outcome.get("replays") is True, (name, outcome)
        else:
            assert name.endswith(".nondeterministic.jsonl")
            assert isinstance(outcome.get("nondeterministic_at"), int), (name, outcome)
    assert third_party == [], "the expression language and replay must need only the standard library"


def test_the_corpus_covers_what_differed_between_versions(cases):
    """The corpus holds cases that gave different results before LocalFlow pinned them."""
    sources = {source for source, _, _ in cases}
    for needed in ("sum([0.1, 0.2, 0.3])", "lower('Ⱟ')", "f'{-0.001:z.2f}'", 'f"{x["k"]}"', "int('\U00011f51')",
                   "f'''\n\n  {x:d}'''", "x[y]"):
        assert needed in sources
