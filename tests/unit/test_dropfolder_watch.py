"""Watcher routing for the drop folder: what reaches the loop, and whether it arrived by rename."""

from pathlib import Path

from watchdog.events import DirCreatedEvent, DirMovedEvent, FileClosedEvent, FileCreatedEvent, FileMovedEvent

from localflow.store.paths import Paths
from localflow.supervisor.watch import Hints

HOME = Path("/nonexistent/lf-home")


def routed(*events):
    paths = Paths.at(HOME)
    seen = {"drop": [], "workflow": [], "log": []}
    hints = Hints(paths, seen["workflow"].append, lambda w, t: None,
                  lambda path, moved: seen["drop"].append((path.name, moved)), seen["log"].append)
    for event in events:
        hints.on_any_event(event)
    return seen


def test_a_file_renamed_into_flows_is_reported_as_arrived_whole_and_one_written_in_place_is_not():
    flows = HOME / "flows"
    seen = routed(FileMovedEvent(str(flows / "r.start.json.tmp"), str(flows / "r.start.json")),
                  FileCreatedEvent(str(flows / "w.start.json")),
                  FileClosedEvent(str(flows / "w.start.json")),
                  FileMovedEvent(str(flows / "x.flow.part"), str(flows / "X.flow")))
    assert seen["drop"] == [("r.start.json", True), ("w.start.json", False), ("w.start.json", False),
                            ("X.flow", True)]


def test_hidden_names_are_ignored_in_flows_and_workflow_staging_dirs_are_not_workflows():
    flows, workflows = HOME / "flows", HOME / "var" / "workflows"
    seen = routed(FileMovedEvent(str(flows / "r.start.json"), str(flows / ".lf-claim-20260101-000000-"
                                                                 "0123456789abcdef-r.start.json")),
                  FileCreatedEvent(str(flows / ".Hello.flow.swp")),
                  DirCreatedEvent(str(workflows / ".new-123-abcd")),
                  FileCreatedEvent(str(workflows / ".new-123-abcd" / "history.jsonl")),
                  DirMovedEvent(str(workflows / ".new-123-abcd"), str(workflows / "w1")))
    assert seen["drop"] == []
    assert seen["workflow"] == ["w1"] and seen["log"] == []
