"""The README's shell walk-throughs, run as written, in a fresh home with the real `lf`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.slow
def test_the_saga_walk_through_runs_as_written(tmp_path):
    home = tmp_path / "home"
    shutil.copytree(REPO / "flows", home / "flows")
    approve, cancel = _sh_blocks(_section("A saga: PurchaseSaga"))[-2:]
    script = f"set -e\n{approve}\necho '=== cancel'\n{cancel}\nwait\n"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "COLUMNS": "200"}

    done = subprocess.run(["bash", "-c", script], cwd=home, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    approved, cancelled = done.stdout.split("=== cancel")
    assert "approval" in approved and "TRK-A-1" in approved
    assert "undo:charge" in cancelled and "RC-A-2" in cancelled and "undo:reserve" in cancelled
    assert cancelled.index("undo:charge") < cancelled.index("undo:reserve")
    assert "stopped" in (home / "supervisor.log").read_text()


def test_the_grep_example_counts_event_types_across_workflows(tmp_path):
    line = next(l for l in README.splitlines() if "uniq -c" in l)
    command = line.split("$ ", 1)[1]
    for n in (1, 2):
        history = tmp_path / "var" / "workflows" / f"PurchaseFlow-{n}" / "history.jsonl"
        history.parent.mkdir(parents=True)
        history.write_text('{"seq":1,"type":"WorkflowStarted"}\n{"seq":2,"type":"WorkflowCompleted"}\n')

    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True)

    assert done.stdout.split() == ["2", '"type":"WorkflowCompleted"', "2", '"type":"WorkflowStarted"']


def test_the_replay_walk_through_runs_as_written(tmp_path):
    home = tmp_path / "home"
    shutil.copytree(REPO / "flows", home / "flows")
    (block,) = _sh_blocks(_section("Replay, time travel and repair"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "COLUMNS": "200"}

    done = subprocess.run(["bash", "-c", block], cwd=home, env=env, capture_output=True, text=True, timeout=120)

    assert "FAIL  p1" in done.stdout and "duration_ms: recorded 1.0s, now 5.0s" in done.stdout
    assert "ok    p1" in done.stdout
    assert "running" in done.stdout and "ActivityScheduled" in done.stdout  # as it was after event 5
    assert "would fork p1 at seq" in done.stdout and "forked p1 at seq" in done.stdout
    assert "p1-again completed" in done.stdout
    assert "card-1 resumed" in done.stdout and "card-1 completed" in done.stdout
    assert done.stdout.count("ok    p1") == 2  # `lf replay p1`, then `lf replay --file p1.bundle`
    assert "imported p1" in done.stdout and "workflow  p1" in done.stdout
    assert "virtual time skipped: 29d" in done.stdout and "r1 completed" in done.stdout
    assert "Traceback" not in done.stderr


def test_the_watching_commands_run_as_written(tmp_path):
    """The views of "Watching workflows" on a finished workflow: each returns (piped, `lf top` prints
    one frame), exit 0, and says what it is about."""
    home = tmp_path / "home"
    shutil.copytree(REPO / "flows", home / "flows")
    (block,) = _sh_blocks(_section("Watching workflows"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "COLUMNS": "120"}
    ran = subprocess.run(["lf", "run", "PurchaseFlow"], cwd=home, env=env, capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 0, ran.stderr
    workflow_id = ran.stdout.split()[1]

    done = subprocess.run(["bash", "-c", "set -e\n" + block], cwd=home, env=env, capture_output=True, text=True,
                          timeout=60)

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.count(workflow_id) >= 3 and '"receipt": "RC-demo-1"' in out  # watch, result, timeline
    assert "TimerFired" in out and "1 workflow: " in out  # history --follow; the counts of top
    assert "sleep at line 17" in out and "flowchart TD" in out  # timeline, graph --run --mermaid
