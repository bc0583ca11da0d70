"""Hostile workflow text and sizes through the real CLI: shown literally and quickly, never a crash.

Issue 6: ``lf run M -i 'v=[/x]'`` then `lf inspect`/`lf history` ended in rich's
MarkupError, ``:smile:`` became an emoji, a 1,000,000-element result took 70 s to print,
a flow nested 200 deep passed `lf validate` and crashed `lf start`, a NUL byte got
Python's message with the caret in the wrong place.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import lf, lf_json, wait_for, workflow_status, write_flow

HOSTILE = "[/x] [red]RED[/red] :smile: undo:hotel:"
ECHO = """flow Echo
  input v = "x"
  step say:
    run ["python3", "-c", "import sys; print(sys.argv[1] + ' [/some/path] done')", v]
  set note = v
  return {"v": v, "said": say.result}
"""


def no_crash(done) -> str:
    assert "Traceback" not in done.stderr and "MarkupError" not in done.stderr, done.stderr
    return done.stdout


def test_markup_and_emoji_codes_in_values_are_shown_literally_by_run_inspect_history_and_list(home):
    write_flow(home, "Echo", ECHO)

    run = lf(home, "run", "Echo", "-i", f"v={HOSTILE}", "--id", "hostile")
    assert run.returncode == 0, run.stdout + run.stderr
    shown = {"run": no_crash(run)}
    for command in ("inspect", "history", "list"):
        done = lf(home, command, *(["hostile"] if command != "list" else []))
        assert done.returncode == 0
        shown[command] = no_crash(done)

    said = f"{HOSTILE} [/some/path] done"
    assert json.dumps(said) in shown["run"]  # in the result panel (and the event lines)
    assert json.dumps(HOSTILE) in shown["inspect"] and json.dumps(said) in shown["inspect"]
    assert json.dumps(said) in shown["history"]
    assert "hostile" in shown["list"]
    for text in shown.values():
        assert "😄" not in text and "🏨" not in text and "undo🏨" not in text
    assert lf_json(home, "inspect", "hostile")["result"] == {"v": HOSTILE, "said": said}


def test_a_failure_message_that_looks_like_markup_is_shown_literally(home):
    command = "echo '[/tmp/x] failed :boom:' >&2; exit 3"
    write_flow(home, "Boom", f'flow Boom\n  step boom:\n    run ["sh", "-c", "{command}"]\n')

    run = lf(home, "run", "Boom", "--id", "boom")
    assert run.returncode == 1
    assert "[/tmp/x] failed :boom:" in no_crash(run)
    for command in ("inspect", "history"):
        assert "[/tmp/x] failed :boom:" in no_crash(lf(home, command, "boom"))


def test_a_huge_result_is_printed_quickly_and_cut_and_json_stays_complete(home):
    write_flow(home, "Big", 'flow Big\n  input n = 1000000\n  set big = list("a" * n)\n  return big\n')

    began = time.monotonic()
    run = lf(home, "run", "Big", "--id", "big")
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - began < 30  # it took 70 s
    note = "more characters; see `lf inspect big --json`)"
    assert note in no_crash(run) and len(run.stdout) < 100_000
    inspect = lf(home, "inspect", "big")
    assert note in no_crash(inspect) and len(inspect.stdout) < 100_000
    history = lf(home, "history", "big")
    assert len(no_crash(history)) < 100_000
    details = lf_json(home, "inspect", "big")
    assert details["result"] == ["a"] * 1_000_000 and len(details["variables"]["big"]) == 1_000_000


def deep_flow(name: str, levels: int) -> str:
    """Innermost statements inside ``levels`` blocks, cycling through if, for, parallel, catch and race."""
    lines, indent = [f"flow {name}"], 2
    for level in range(levels):
        pad = " " * indent
        kind = ("if", "for", "parallel", "catch", "race")[level % 5]
        if kind == "if":
            lines.append(f"{pad}if true:")
        elif kind == "for":
            lines.append(f"{pad}for i{level} in [{level}]:")
        elif kind == "catch":
            lines += [f"{pad}step s{level}:", f'{pad}  run ["false"]', f"{pad}  catch:"]
            indent += 2
        else:
            lines.append(f"{pad}{kind}:")
            if kind == "race":
                lines += [f"{pad}  branch:", f"{pad}    sleep 1h"]
            lines.append(f"{pad}  branch:")
            indent += 2
        indent += 2
    pad = " " * indent
    lines += [f"{pad}step inner:", f'{pad}  run ["echo", "[/x] :smile:"]',
              f'{pad}return {{"levels": {levels}, "said": inner.result}}']
    return "\n".join(lines) + "\n"


def test_the_deepest_flow_allowed_runs_and_every_view_shows_it(home):
    write_flow(home, "Deep", deep_flow("Deep", 32))

    assert lf(home, "validate", "flows/Deep.flow").returncode == 0
    run = lf(home, "run", "Deep", "--id", "deep")
    assert run.returncode == 0, run.stdout + run.stderr
    assert lf_json(home, "inspect", "deep")["result"] == {"levels": 32, "said": "[/x] :smile:"}
    for args in (("inspect", "deep"), ("history", "deep"), ("graph", "Deep"), ("graph", "Deep", "--mermaid")):
        done = lf(home, *args)
        assert done.returncode == 0, args
        no_crash(done)


@pytest.mark.parametrize("levels", [33, 200, 280])
def test_a_flow_nested_too_deeply_is_a_positioned_error_for_validate_and_start(home, levels):
    write_flow(home, "Deep", deep_flow("Deep", levels))

    for args in (("validate", "flows/Deep.flow"), ("start", "Deep")):
        done = lf(home, *args)
        assert done.returncode == 2, args
        assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
        first = done.stderr.splitlines()[0]
        assert first.startswith("flows/Deep.flow:") and "blocks are nested too deeply" in first, first
    assert lf_json(home, "list") == []  # nothing was started


def test_nul_byte_and_empty_flow_files_are_reported_clearly(home):
    (home / "flows" / "Nul.flow").write_bytes(b'flow Nul\n  return "a\x00b"\n')
    (home / "flows" / "Empty.flow").write_text("# to do\n\n")

    done = lf(home, "validate", "flows/Nul.flow", "flows/Empty.flow")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert "flows/Nul.flow:2:12: the flow file contains a NUL byte" in lines
    assert any(line.startswith("flows/Empty.flow:1:1: the flow file is empty") for line in lines)
    assert "null bytes" not in done.stderr


def test_the_supervisor_log_reads_timer_purposes_as_words_and_keeps_text_literal(home, supervisor):
    write_flow(home, "Wait", """flow Wait
  step approval:
    wait signal approve timeout 1s
    catch timeout:
      step say:
        run ["echo", "[/x] :smile:"]
""")
    sup = supervisor()
    assert lf(home, "start", "Wait", "--id", "wait").returncode == 0
    wait_for(lambda: workflow_status(home, "wait") == "completed", what="wait completed")
    wait_for(lambda: "[/x] :smile:" in sup.output(), what="the activity's result in the log")

    log = sup.output()
    assert "approval: signal timeout in 1.0s" in log
    assert "attempt timeout" not in log
