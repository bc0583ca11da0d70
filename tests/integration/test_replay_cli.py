"""`lf replay` checks recorded workflows against a flow; `--at` / `--upto` show a history's past."""

from __future__ import annotations

import json

from conftest import lf, lf_json


def _edited(home, old: str, new: str):
    target = home / "edit" / "PurchaseFlow.flow"
    target.parent.mkdir()
    target.write_text((home / "flows" / "PurchaseFlow.flow").read_text().replace(old, new))
    return "edit/PurchaseFlow.flow"


def test_replay_passes_a_workflow_against_its_own_flow_and_fails_an_edited_one(home):
    assert lf(home, "run", "PurchaseFlow", "--id", "p1", timeout=60).returncode == 0
    edited = _edited(home, "retry 2 every 1s", "retry 2 every 5s")

    same = lf(home, "replay", "p1")
    changed = lf(home, "replay", "--all", "--flow", edited)

    assert same.returncode == 0 and same.stdout.startswith("ok    p1")
    assert changed.returncode == 4
    assert "duration_ms: recorded 1.0s, now 5.0s" in changed.stdout
    assert "edit/PurchaseFlow.flow:12:3:" in changed.stdout
    assert len(list((home / "var" / "workflows" / "p1").glob("history.jsonl*"))) == 1  # nothing written


def test_replay_json_names_the_seq_and_each_difference(home):
    assert lf(home, "run", "PurchaseFlow", "--id", "p1", timeout=60).returncode == 0
    edited = _edited(home, "timeout 30s\n    retry 3", "timeout 45s\n    retry 3")

    done = lf(home, "replay", "p1", "--flow", edited, "--json")

    (result,) = json.loads(done.stdout)
    assert done.returncode == 4 and result["result"] == "nondeterministic" and result["seq"] == 2
    assert "timeout_ms: recorded 30.0s, now 45.0s" in result["explain"]


def test_replay_needs_workflows_to_check(home):
    done = lf(home, "replay")
    assert done.returncode == 2 and "--all" in done.stderr


def test_inspect_at_and_history_upto_show_the_past(home):
    assert lf(home, "run", "PurchaseFlow", "--id", "p1", timeout=60).returncode == 0
    events = lf_json(home, "history", "p1")

    at_3 = lf_json(home, "inspect", "p1", "--at", "3")
    upto_3 = lf_json(home, "history", "p1", "--upto", "3")
    too_far = lf(home, "inspect", "p1", "--at", str(len(events) + 1))

    assert at_3["status"] == "running" and at_3["current_steps"] == ["reserve"]
    assert [s["status"] for s in at_3["steps"]] == ["running"]
    assert upto_3 == events[:3]
    assert too_far.returncode == 2 and f"events 1 to {len(events)}" in too_far.stderr
