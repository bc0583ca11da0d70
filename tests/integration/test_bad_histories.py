"""Damaged histories: a clear error naming file:line, nothing lost, other workflows unaffected."""

from conftest import lf, lf_json, wait_for, workflow_status


def corrupt_line(path, number):
    lines = path.read_bytes().split(b"\n")
    lines[number - 1] = lines[number - 1].replace(b'"seq"', b'"seq" ', 1).replace(b"demo", b"DEMO", 1)
    path.write_bytes(b"\n".join(lines))


def test_corrupt_line_is_reported_with_file_and_line_and_left_untouched(home):
    assert lf(home, "run", "PurchaseFlow", "--id", "bad").returncode == 0
    path = home / "var/workflows/bad/history.jsonl"
    corrupt_line(path, 2)
    before = path.read_bytes()
    done = lf(home, "inspect", "bad")
    assert done.returncode == 3
    assert "var/workflows/bad/history.jsonl:2: history is corrupt: checksum mismatch" in done.stderr
    assert "Traceback" not in done.stderr
    assert path.read_bytes() == before
    listing = lf(home, "list")
    assert listing.returncode == 0 and "bad" in listing.stderr and "corrupt" in listing.stderr


def test_torn_tail_is_ignored_on_read_and_repaired_by_the_supervisor(home, supervisor):
    assert lf(home, "start", "PurchaseFlow", "--id", "torn").returncode == 0
    path = home / "var/workflows/torn/history.jsonl"
    with open(path, "ab") as handle:
        handle.write(b'{"seq":2,"ts":"2026-11-25T2')
    assert lf_json(home, "inspect", "torn")["status"] == "running"
    supervisor()
    wait_for(lambda: workflow_status(home, "torn") == "completed", what="torn completed")
    assert len(list((home / "var/workflows/torn").glob("history.jsonl.torn-*"))) == 1


def test_supervisor_keeps_running_other_workflows_when_one_is_corrupt(home, supervisor):
    assert lf(home, "start", "PurchaseFlow", "--id", "broken").returncode == 0
    corrupt_line(home / "var/workflows/broken/history.jsonl", 1)
    assert lf(home, "start", "PurchaseFlow", "--id", "fine").returncode == 0
    sup = supervisor()
    wait_for(lambda: workflow_status(home, "fine") == "completed", what="fine completed")
    assert "broken: cannot continue" in sup.output() and "history.jsonl:1" in sup.output()
    assert sup.process.poll() is None
