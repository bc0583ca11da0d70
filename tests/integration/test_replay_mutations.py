"""A mutation test of replay: edit each example flow, replay its histories against the edit.

Every example flow (flows/*.flow, flows/examples/*.flow) is run in-process (memory
store, scripted runner, virtual clock, the real executor) to record finished
histories and in-flight prefixes of them. Each flow's source is then mutated in
the ways a user edits a flow (swap two steps, rename one, change an argv element,
a timeout, a retry policy, a loop, a condition, ...), re-parsed, and every history
of that flow is replayed against every mutation. Replay must raise
NondeterminismError, or accept the edit for a reason on the allowlist below, which
the helpers work out from the history itself (was the mutated statement reached,
did the step ever fail, was the signal already buffered, ...). The per-kind table
is docs/mutations.md, checked here so the docs cannot drift (`pytest -s` prints it).
The machinery is in _mutations.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mutations as m  # noqa: E402

DOCS = m.REPO / "docs" / "mutations.md"

# Why a mutation may be accepted, per kind. Anything accepted for another reason, or for
# no reason the helpers can find (the mutated statement decided something in this history
# and nothing explains why the decision did not change), fails the test: it must be caught.
_ANYWHERE = {m.NOT_REACHED_YET, m.NOT_TAKEN}
ALLOWED: dict[str, set[str]] = {
    "swap adjacent steps": _ANYWHERE,
    "rename a step": _ANYWHERE,
    "change an argv element": _ANYWHERE,
    "change an undo command": _ANYWHERE,
    "change a stdin clause": _ANYWHERE,
    "change a step timeout": _ANYWHERE,
    "change a retry count": _ANYWHERE | {m.NEVER_FAILED, m.RETRIES_SAME, m.CANCELLED_ONLY},
    "change a retry delay (every)": _ANYWHERE | {m.NEVER_FAILED},  # a recorded retry delay always changes
    "change a retry backoff": _ANYWHERE | {m.NEVER_FAILED, m.RETRIES_SAME},
    "change a sleep": _ANYWHERE,
    "change a loop's items": _ANYWHERE,
    "change a loop's parallel width": _ANYWHERE | {m.WIDTH_FITS},
    "add a branch": _ANYWHERE,
    "add a step": _ANYWHERE,
    "remove a step": _ANYWHERE,
    "change a wait's timeout": _ANYWHERE | {m.BUFFERED},
    "rename a wait's signal": _ANYWHERE | {m.SIGNAL_PENDING},
    "change a catch's match": _ANYWHERE | {m.NEVER_FAILED, m.CATCH_STILL_MATCHES},
    "change a set expression": _ANYWHERE,
    "negate an if condition": _ANYWHERE | {m.EARLIER_ARM},
    "change a number in an if condition": _ANYWHERE | {m.EARLIER_ARM, m.SAME_ARM},
    "change a return value": _ANYWHERE,
    "change a fail message": _ANYWHERE,
    "change a child flow's input": _ANYWHERE,
    "change the workflow timeout": set(),  # decided first thing: every history that decided anything catches it
    "change an input default": {m.INPUT_RECORDED},
}

# Mutations replay accepts although it should not: (history label, kind, mutation label) -> why.
# Each one is reported as an xfail below; none has been found in the example flows.
KNOWN_GAPS: dict[tuple[str, str, str], str] = {}


@pytest.fixture(scope="module")
def outcomes() -> list[m.Outcome]:
    return m.all_outcomes()


def test_every_example_flow_is_recorded_and_mutated(outcomes):
    flows = {o.flow for o in outcomes}
    assert flows == set(m.example_flows())
    assert set(m.example_flows()) <= set(m.SCENARIOS), "a flow without a scenario of its own (every step succeeds)"
    assert set(m.KINDS) == set(ALLOWED)
    for flow_file in flows:
        mine = [o for o in outcomes if o.flow == flow_file]
        assert any(o.history.finished for o in mine) and any(not o.history.finished for o in mine), flow_file
    assert all(row[1] > 0 for row in m.table(outcomes)), "a mutation kind applied nowhere"


def test_the_recorded_histories_replay_against_their_own_flows():
    for flow_file in m.example_flows():
        flow = m.parse_flow((m.REPO / flow_file).read_text(), flow_file)
        for history in m.record_histories(flow_file):
            m.replay(history.events, flow, source=(m.REPO / flow_file).read_text())  # must not raise


def test_every_accepted_mutation_is_accepted_on_purpose(outcomes):
    wrong = []
    for o in outcomes:
        if o.caught or (o.history.label, o.mutation.kind, o.mutation.label) in KNOWN_GAPS:
            continue
        if o.reason is None:
            wrong.append(f"{o.key}: accepted, but it changes a decision this history recorded (should be caught)")
        elif o.reason not in ALLOWED[o.mutation.kind]:
            wrong.append(f"{o.key}: accepted because {o.reason!r}, which the allowlist does not allow for this kind")
    assert not wrong, "\n".join(wrong)


def test_every_allowlisted_reason_is_used(outcomes):
    used = {(o.mutation.kind, o.reason) for o in outcomes if not o.caught}
    unused = [(kind, reason) for kind, reasons in ALLOWED.items() for reason in reasons
              if (kind, reason) not in used and reason not in _ANYWHERE]
    assert not unused, f"allowlist entries no history exercises: {unused}"


@pytest.mark.parametrize("gap", sorted(KNOWN_GAPS) or [None])
def test_known_gaps(outcomes, gap):
    if gap is None:
        pytest.skip("no known gap")
    found = [o for o in outcomes if (o.history.label, o.mutation.kind, o.mutation.label) == gap]
    assert found, f"{gap}: no longer applied"
    if not found[0].caught:
        pytest.xfail(KNOWN_GAPS[gap])


def test_the_table_in_docs_matches(outcomes):
    computed = m.render(m.table(outcomes))
    print("\n" + computed)
    text = DOCS.read_text()
    found = re.search(r"<!-- table -->\n(.*?)\n<!-- /table -->", text, re.S)
    assert found, "docs/mutations.md has no <!-- table --> ... <!-- /table --> block"
    assert found.group(1).strip() == computed, "docs/mutations.md is out of date; the table is now:\n" + computed
    for code, meaning in m.REASONS.items():
        assert f"| {code} | {meaning} |" in text, f"docs/mutations.md does not explain {code!r}"
