"""docs/patterns.md and flows/patterns/ agree: all 43 patterns in the table, every flow it names
exists (and says its pattern at its top), every pattern flow is in the table, the count is right."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "patterns.md"
FLOWS = REPO / "flows" / "patterns"
HELPERS = {"PatternChild"}  # child flows of the pattern flows

ROW = re.compile(r"^\| (\d+) \| ([^|]+) \| (.+) \| (.+) \|$")
LINK = re.compile(r"^\[(\w+)\]\(\.\./flows/patterns/(\w+)\.flow\)$")


def rows() -> list[tuple[int, str, str, str]]:
    found = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            found.append((int(match.group(1)), match.group(2).strip(), match.group(3).strip(), match.group(4).strip()))
    return found


def linked_flows() -> dict[int, str]:
    out = {}
    for number, _, _, example in rows():
        match = LINK.match(example)
        if match:
            assert match.group(1) == match.group(2), f"WCP-{number}: link text and file differ: {example}"
            out[number] = match.group(2)
    return out


def test_the_table_lists_all_43_patterns_in_order():
    assert [number for number, _, _, _ in rows()] == list(range(1, 44))
    header = "| WCP | name | LocalFlow construct | example flow |"
    assert header in DOC.read_text(encoding="utf-8")


def test_every_flow_named_in_the_table_exists():
    for number, name in linked_flows().items():
        assert (FLOWS / f"{name}.flow").is_file(), f"WCP-{number}: flows/patterns/{name}.flow is missing"


def test_every_pattern_flow_is_in_the_table():
    flows = {p.stem for p in FLOWS.glob("*.flow")} - HELPERS
    assert flows == set(linked_flows().values())
    assert all((FLOWS / f"{helper}.flow").is_file() for helper in HELPERS)


def test_each_flow_says_its_pattern_at_its_top():
    for number, name in linked_flows().items():
        first = (FLOWS / f"{name}.flow").read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith(f"# WCP-{number} "), f"{name}.flow should start with '# WCP-{number} <name>: ...'"
        assert re.search(rf"^flow {name}$", (FLOWS / f"{name}.flow").read_text(encoding="utf-8"), re.M)


def test_rows_without_a_flow_say_why_and_the_count_is_right():
    supported = linked_flows()
    for number, name, construct, example in rows():
        if number in supported:
            assert "not supported" not in construct, f"WCP-{number} has a flow but says it is not supported"
        else:
            assert example == "—", f"WCP-{number}: {example}"
            assert construct.startswith(("not supported: ", "workaround: ")), f"WCP-{number} ({name}) says neither"
    text = DOC.read_text(encoding="utf-8")
    assert f"**{len(supported)} of the 43 are supported directly**" in text
    assert f"The other {43 - len(supported)} are left out" in text
    assert len(supported) >= 30
    unsupported = sorted(set(range(1, 44)) - set(supported))
    assert unsupported == [8, 10, 28, 31, 33, 37, 38]


def test_the_pitfalls_are_there():
    text = DOC.read_text(encoding="utf-8")
    assert "## Pitfalls" in text
    for topic in ("timed_out", "A race branch that fails before another wins fails the workflow",
                  "recorded before that activity's\ncompletion"):
        assert topic in text, topic
