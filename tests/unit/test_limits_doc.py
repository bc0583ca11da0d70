"""docs/limits.md says every limit with the module it comes from: each number there is the code's.

A row of a table in the doc is ``| what | value | where |``. ``where`` names a module file and, in
backticks, the constant holding the limit (the value's first number must equal it), or says
``(checked by behaviour: KEY)`` where the code has no constant: then ``BEHAVIOUR[KEY]`` checks the
number against what the code does (one past it is refused). Every public ``MAX_*`` constant of
localflow must have its row, so a new limit cannot go undocumented.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from localflow.dsl import parse_flow
from localflow.errors import FlowSyntaxError, InvalidWorkflowId

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "limits.md"
ROW = re.compile(r"^\|(?P<what>[^|]+)\|(?P<value>[^|]+)\|(?P<where>[^|]+)\|\s*$")
CONSTANT = re.compile(r"^`(?P<file>localflow/[\w/]+\.py)` `(?P<name>\w+)`$")
BEHAVIOUR_REF = re.compile(r"^`(?P<file>localflow/[\w/]+\.py)` \(checked by behaviour: (?P<key>[\w ]+)\)$")


def rows() -> list[tuple[str, str, str]]:
    found = []
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match and not set(match["what"].strip()) <= {"-"} and match["what"].strip() != "Limit":
            found.append((match["what"].strip(), match["value"].strip(), match["where"].strip()))
    return found


def number(value: str) -> float:
    match = re.match(r"^([0-9][0-9,_]*(?:\.[0-9]+)?)", value)
    assert match, f"a value must start with its number: {value!r}"
    return float(match.group(1).replace(",", "").replace("_", ""))


def module_of(file: str):
    assert (REPO / file).is_file(), file
    return importlib.import_module(file[:-3].replace("/", "."))


def _flow_ok(text: str) -> bool:
    try:
        parse_flow(text)
    except FlowSyntaxError:
        return False
    return True


def _step(clause: str) -> str:
    return f'flow F\n  step s:\n    run ["true"]\n    {clause}\n'


def _concurrency(n: int) -> None:
    assert _flow_ok(_step(f"concurrency {n}")) and not _flow_ok(_step(f"concurrency {n + 1}"))


def _retry(n: int) -> None:
    assert _flow_ok(_step(f"retry {n}")) and not _flow_ok(_step(f"retry {n + 1}"))


def _exit_code(n: int) -> None:
    assert _flow_ok(_step(f"no retry on exit {n}")) and not _flow_ok(_step(f"no retry on exit {n + 1}"))
    assert not _flow_ok(_step("no retry on exit 0"))


def _jitter(n: int) -> None:
    assert _flow_ok(_step(f"retry 1 every 1s jitter {n}%")) and not _flow_ok(_step(f"retry 1 every 1s jitter {n + 1}%"))


def _workflow_id(n: int) -> None:
    from localflow.store.paths import validate_workflow_id

    assert validate_workflow_id("a" * n)
    with pytest.raises(InvalidWorkflowId):
        validate_workflow_id("a" * (n + 1))


def _generated_id(n: int, tmp_path: Path) -> None:
    from localflow.engine import Engine

    made = Engine(tmp_path).new_id("F" * (n + 50))
    assert made.startswith("F" * n + "-")


def _schedule_name(n: int) -> None:
    from localflow.schedules import ScheduleError, validate_name

    assert validate_name("a" * n)
    with pytest.raises(ScheduleError):
        validate_name("a" * (n + 1))


def _env_name(n: int) -> None:
    from localflow.core.secrets import ENV_NAME

    assert ENV_NAME.fullmatch("A" * n) and not ENV_NAME.fullmatch("A" * (n + 1))


def _every(n: int) -> None:
    from localflow.schedules import ScheduleError, parse_spec

    parse_spec(f"@every {n}d")
    with pytest.raises(ScheduleError):
        parse_spec(f"@every {n}d1s")


def _workers(n: int, monkeypatch) -> None:
    import os

    from localflow.runner import workers

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert workers.default_size() == n
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert workers.default_size() == 1


def _max_activities(n: int) -> None:
    from localflow.cli.main import build_parser

    args = build_parser().parse_args(["run", "F"])
    assert args.max_activities == n  # 0: no limit


BEHAVIOUR = {"concurrency": _concurrency, "retry": _retry, "exit code": _exit_code, "jitter": _jitter,
             "workflow id": _workflow_id, "generated id": _generated_id, "schedule name": _schedule_name,
             "env name": _env_name, "every": _every, "workers": _workers, "max activities": _max_activities}


def test_the_doc_has_its_tables():
    assert len(rows()) >= 60


@pytest.mark.parametrize("what, value, where", rows(), ids=[r[0][:60] for r in rows()])
def test_each_documented_limit_is_the_codes(what, value, where, tmp_path, monkeypatch):
    expected = number(value)
    constant = CONSTANT.match(where)
    if constant:
        actual = getattr(module_of(constant["file"]), constant["name"])
        assert float(actual) == expected, f"{what}: the doc says {value}, {constant['name']} is {actual}"
        return
    behaviour = BEHAVIOUR_REF.match(where)
    assert behaviour, f"{what}: 'where' must name a constant or a behaviour check: {where!r}"
    module_of(behaviour["file"])
    check = BEHAVIOUR[behaviour["key"]]
    extra = {"tmp_path": tmp_path} if "tmp_path" in check.__code__.co_varnames else {}
    extra.update({"monkeypatch": monkeypatch} if "monkeypatch" in check.__code__.co_varnames else {})
    check(int(expected), **extra)


def test_every_public_max_constant_is_documented():
    documented = {(m["file"], m["name"]) for _, _, where in rows() if (m := CONSTANT.match(where))}
    missing = []
    for path in sorted((REPO / "localflow").rglob("*.py")):
        file = str(path.relative_to(REPO))
        for name in re.findall(r"^((?:DEFAULT_)?MAX_[A-Z0-9_]+)\s*=", path.read_text(), re.MULTILINE):
            if (file, name) not in documented:
                missing.append(f"{file} {name}")
    assert not missing, f"limits with no row in docs/limits.md: {missing}"


def test_every_behaviour_check_is_used():
    used = {m["key"] for _, _, where in rows() if (m := BEHAVIOUR_REF.match(where))}
    assert used == set(BEHAVIOUR)
