"""docs/views.md, checked against the real `lf`.

The doc's convention (stated at its top): in a ```text block, a line starting with `$ ` is a
command and the lines under it, up to the next `$ ` line, are what it printed; every line of
an ```sh block is a command. Here:

- every `lf ...` invocation of those lines (through `&&`, `||`, `|`, `;` and `$(...)`) parses
  with the real argument parser, and so does each `lf signal ...` line the examples print;
- the commands that end at once (`lf result`, `lf history --follow` and `lf watch` of an
  ended workflow, `lf top --once`, `lf timeline`, `lf graph --run`) run for real, in a
  pseudo-terminal 100 columns wide (120 for `lf graph --run`) as the doc's captures were, in a
  home where the doc's flows have run; each doc id is replaced by the id of a workflow of the
  same flow there, and the output must say what the doc shows (exactly where nothing depends
  on the clock, else the lines that do not).
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from localflow.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "views.md"
BIN = Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Z0-9]")
WORKFLOW_ID = re.compile(r"\b([A-Z][A-Za-z0-9]*)-\d{8}-\d{6}-[0-9a-f]{6}\b")
# what `lf ... ` does not end at once, or needs a supervisor: parsed only
LIVE = {"start", "supervise", "signal"}


# --- reading the doc -----------------------------------------------------------------


def examples() -> list[tuple[str, str, list[str]]]:
    """(kind, command line, the lines it printed) for each command of the doc's code blocks."""
    found = []
    text = DOC.read_text(encoding="utf-8")
    for kind, body in re.findall(r"^```(text|sh)\n(.*?)^```", text, flags=re.S | re.M):
        if kind == "sh":
            found += [("sh", line, []) for line in body.splitlines() if line.strip() and not line.startswith("#")]
            continue
        for line in body.splitlines():
            if line.startswith("$ "):
                found.append(("text", line[2:], []))
            elif found and found[-1][0] == "text":
                found[-1][2].append(line)
    return found


def split_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line: `$(...)` taken out (and split in turn), then split at
    `&&`, `||`, `|` and `;`; a leading `VAR=value` is dropped."""
    commands = []
    while (inner := re.search(r"\$\(([^()]*)\)", line)) is not None:
        commands += split_commands(inner.group(1))
        line = line[:inner.start()] + "SUBST" + line[inner.end():]
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    current: list[str] = []
    for token in list(lexer) + [";"]:
        if token in ("&&", "||", "|", ";", "&"):
            while current and re.fullmatch(r"\w+=.*", current[0]):
                current.pop(0)
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    return commands


def lf_invocations() -> list[list[str]]:
    return [argv[1:] for _, line, _ in examples() for argv in split_commands(line) if argv[0] == "lf"]


def parse(argv: list[str]):
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of saying no
        raise AssertionError(f"`lf {shlex.join(argv)}` does not parse (exit {exc.code})") from None


# --- parsing -------------------------------------------------------------------------


def test_the_doc_shows_every_view_and_its_commands_are_found():
    commands = {argv[0] for argv in lf_invocations()}
    assert {"watch", "history", "result", "top", "timeline", "graph"} <= commands, commands
    assert split_commands("lf start X && r=$(lf result @last --wait | jq -r .r); echo $?") == [
        ["lf", "result", "@last", "--wait"], ["jq", "-r", ".r"], ["lf", "start", "X"], ["echo", "$?"]]


@pytest.mark.parametrize("argv", lf_invocations(), ids=shlex.join)
def test_every_command_of_the_doc_parses(argv):
    args = parse(argv)
    assert args.command == argv[0]


def test_the_signal_commands_the_examples_print_parse():
    printed = [line.strip() for _, _, out in examples() for line in out if line.strip().startswith("lf signal ")]
    assert printed, "the lf watch example prints the command that answers its wait"
    for line in printed:
        (argv,) = split_commands(line)
        assert parse(argv[1:]).command == "signal"


# --- running ---------------------------------------------------------------------------


def in_pty(home: Path, line: str, columns: int) -> str:
    """`bash -c LINE` in a pseudo-terminal `columns` wide, as a user sees it (escapes removed)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "LOCALFLOW_HOME")}
    env.update(TERM="xterm-256color", PATH=f"{BIN}:{env.get('PATH', '')}")
    process = subprocess.Popen(["bash", "-c", line], stdin=slave, stdout=slave, stderr=slave, cwd=home, env=env,
                               start_new_session=True)
    os.close(slave)
    raw = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not data:
            break
        raw += data
    os.close(master)
    assert process.wait(timeout=10) == 0, f"{line!r} exited {process.returncode}:\n{raw.decode(errors='replace')}"
    text = ANSI.sub("", raw.decode("utf-8", errors="replace")).replace("\r\n", "\n").replace("\r", "")
    return "\n".join(l.rstrip() for l in text.splitlines())


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A home where the doc's flows have run: PurchaseFlow, SagaRefund (fails), RaceTimeout and an
    answered Approval to the end (`lf run`, no supervisor), Reminder left asleep for 30 days.
    Gives (home, {flow: workflow id})."""
    home = tmp_path_factory.mktemp("views-doc") / "home"
    (home / "flows" / "examples").mkdir(parents=True)
    shutil.copy(REPO / "flows" / "PurchaseFlow.flow", home / "flows")
    shutil.copytree(REPO / "flows" / "activities", home / "flows" / "activities")
    for name in ("Approval", "SagaRefund", "RaceTimeout", "Reminder"):
        shutil.copy(REPO / "flows" / "examples" / f"{name}.flow", home / "flows" / "examples")
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("LOCALFLOW_HOME", None)

    started: list[subprocess.Popen] = []

    def lf(*args: str) -> subprocess.Popen:
        started.append(subprocess.Popen([sys.executable, "-m", "localflow", "--home", str(home), *args], cwd=home,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return started[-1]

    def finish(process: subprocess.Popen, code: int = 0) -> str:
        out, err = process.communicate(timeout=60)
        assert process.returncode == code, f"{process.args}: {out}{err}"
        return out

    def timer_set(flow: str) -> str:
        """Wait until FLOW's workflow has started a timer (a wait's timeout, a sleep): its id."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for history in (home / "var" / "workflows").glob(f"{flow}-*/history.jsonl"):
                if "TimerStarted" in history.read_text():
                    return history.parent.name
            time.sleep(0.05)
        raise AssertionError(f"the {flow} workflow never started its timer")

    try:
        # one at a time: a second `lf run` would wait for the executor slot, and its workflow's
        # times (counted from its start) would no longer be those of the doc
        approval = lf("run", "Approval")
        finish(lf("signal", timer_set("Approval"), "approve", "--data", '{"by": "ann"}'))
        ids = {"Approval": finish(approval).split()[1]}  # "workflow <id>"
        for name in ("PurchaseFlow", "SagaRefund", "RaceTimeout"):
            ids[name] = finish(lf("run", name), 1 if name == "SagaRefund" else 0).split()[1]
        # Reminder asleep for 30 days and no one running it: its `lf run` interrupted once the timer is set
        reminder = lf("run", "Reminder")
        timer_set("Reminder")
        reminder.send_signal(signal.SIGINT)
        ids["Reminder"] = finish(reminder, 130).split()[1]
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    return home, ids


def real(line: str, ids: dict[str, str]) -> str:
    """The doc's line with each workflow id replaced by this home's workflow of the same flow (if any)."""
    return WORKFLOW_ID.sub(lambda m: ids.get(m.group(1), m.group(0)), line)


def clockless(line: str) -> str:
    """What does not depend on the clock or the machine: times, pids and run times taken out."""
    line = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<ts>", line)
    line = re.sub(r"\b\d\d:\d\d:\d\dZ", "<t>", line)
    line = re.sub(r"pid \d+", "pid <n>", line)
    return re.sub(r"completed in [\d.]+m?s", "completed in <d>", line)


def run_example(ran, prefix: str, columns: int = 100) -> tuple[str, list[str], list[str]]:
    """The doc's example whose command starts with PREFIX, run here: (command, doc lines, real lines)."""
    home, ids = ran
    (example,) = [(line, out) for kind, line, out in examples() if kind == "text" and line.startswith(prefix)]
    line, doc_out = example
    command = real(line, ids)
    assert parse(split_commands(command)[0][1:]).command in {"watch", "history", "result", "top", "timeline", "graph"}
    return command, [real(l, ids) for l in doc_out], in_pty(home, command, columns).splitlines()


def test_lf_result_prints_the_result_the_error_and_the_exit_codes(ran):
    for prefix in ("lf result PurchaseFlow", "lf result SagaRefund", "lf result Reminder"):
        command, doc, got = run_example(ran, prefix)
        assert got == doc, command


def test_lf_graph_run_draws_the_tree_and_the_mermaid_chart(ran):
    command, doc, got = run_example(ran, "lf graph --run PurchaseFlow", columns=120)
    assert got == doc, command
    assert "├── sleep 2s  [slept 2.0s]" in got
    command, doc, got = run_example(ran, "lf graph --run SagaRefund")
    assert got == doc, command
    assert any("completed, 1 attempt, undone" in l for l in got) and "    class n4 st_failed" in got


def test_lf_history_follow_of_an_ended_workflow_prints_every_event_and_exits(ran):
    command, doc, got = run_example(ran, "lf history PurchaseFlow")
    assert [clockless(l) for l in got] == [clockless(l) for l in doc], command
    assert any("sleep at line 17: sleeping 2.0s" in l for l in got)
    assert all(re.match(r" +\d+  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", l) for l in got[1:])  # full ISO UTC


def test_lf_watch_of_an_ended_workflow_prints_its_events_and_result_without_the_signal_command(ran):
    command, doc, got = run_example(ran, "lf watch Approval")
    live_only = [l for l in doc if l.startswith("  waiting for signal") or l.strip().startswith("lf signal ")]
    assert len(live_only) == 2
    assert [clockless(l) for l in got] == [clockless(l) for l in doc if l not in live_only], command
    assert re.fullmatch(r"  \d\d:\d\d:\d\dZ  started Approval with input \{\}", got[1])


def timeline_rows(lines: list[str]) -> list[tuple[str, str]]:
    """(label, last word of the summary) of each row under the axis line."""
    axis = next(i for i, l in enumerate(lines) if "|0" in l)
    rows = [l for l in lines[axis + 1:] if l and not l.startswith("█ ran")]
    return [(re.split(r"\s{2,}", l)[0], l.split()[-1]) for l in rows]


def test_lf_timeline_names_the_rows_in_the_flows_words(ran):
    command, doc, got = run_example(ran, "lf timeline PurchaseFlow")
    assert got[0].split()[:3] == doc[0].split()[:3], command  # id, flow, status
    assert timeline_rows(got) == timeline_rows(doc) == [
        ("workflow", "✓"), ("reserve #1", "✓"), ("charge #1", "✗"), ("charge #2", "✓"),
        ("sleep at line 17", "fired")]
    assert got[-1] == doc[-1] and got[-1].startswith("█ ran")  # the legend, on a terminal


def test_lf_timeline_piped_is_ascii_without_a_legend(ran):
    command, doc, got = run_example(ran, "lf timeline RaceTimeout")
    assert got[0].split()[:4] == doc[0].split()[:4], command
    assert timeline_rows(got) == timeline_rows(doc) == [
        ("workflow", "ok"), ("slow_lookup #1", "cancelled"), ("sleep at line 9", "fired")]
    assert all(l.isascii() for l in got + doc) and max(map(len, got[1:])) == 80  # the chart: --width 80


def fields(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_lf_top_once_prints_the_sections_of_the_frame(ran):
    home, ids = ran
    command, doc, got = run_example(ran, "lf top --once")
    if not re.search(r"\dZ$", got[0]):  # a long temp home wraps the header's clock onto a line of its own
        got = [f"{got[0]}  {got[1].strip()}", *got[2:]]
    assert re.fullmatch(rf"lf top  {re.escape(str(home))}  no supervisor running  "
                        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got[0])
    assert re.fullmatch(r"\d+ workflows: \d+ running, \d+ held, \d+ completed, \d+ failed", doc[1])
    assert got[1] == "5 workflows: 1 running, 0 held, 3 completed, 1 failed"
    sections = ("running activities", "waiting for a signal", "next timers", "recent failures")
    for lines in (doc, got):
        starts = [next(i for i, l in enumerate(lines) if l.startswith(s)) for s in sections]
        assert starts == sorted(starts), lines
    assert "running activities: none" in got and "waiting for a signal: none" in got
    reminder = lambda lines: next(fields(l) for l in lines if l.strip().startswith(ids["Reminder"]))
    assert reminder(got) == reminder(doc) == [ids["Reminder"], "sleep at line 8", "sleep", "in 29d23h"]
    failure = lambda lines: next(fields(l) for l in lines if l.strip().startswith(ids["SagaRefund"]))
    assert failure(got)[:3] == failure(doc)[:3] == [ids["SagaRefund"], "SagaRefund", "failed"]
    assert got[-1] == doc[-1] == "times relative to now"  # (--once: nothing to leave)
