"""What the views show of workflow values: always literally, never more than a screenful.

Rich reads a plain ``str`` as markup and emoji codes: ``[/x]`` used to crash `lf inspect`,
`lf history` and `lf run`'s result panel, ``[red]RED[/red]`` showed as ``RED`` and
``:smile:`` as an emoji. Huge values (a 1,000,000-element result) took a minute to print.
The console here is configured like the CLI's (markup and emoji on).
"""

from __future__ import annotations

import io
import json
import time

import pytest
from rich.console import Console

from localflow import ir
from localflow.cli import render
from localflow.cli.times import TimePolicy
from localflow.cli.graph_render import flow_tree
from localflow.core import events as ev
from localflow.core.state import fold
from localflow.dsl import parse_flow
from localflow.present import MAX_SHOWN_CHARS, MAX_SHOWN_LINES, clip_json, clip_text, describe, short_json

HOSTILE = "[/x] [red]RED[/red] :smile: undo:hotel: [/some/path] done [link=http://e.x]y[/link] \\[bold]"
EMOJI = ("😄", "🏨")

FLOW = parse_flow("""flow Echo
  input v = "x"
  step say:
    run ["echo", v]
  set note = v
  return {"v": v, "said": say.result}
""", "flows/Echo.flow")


def state_of(*events: ev.Event, input_: object = HOSTILE):
    started = ev.WorkflowStarted(seq=1, ts=1000, workflow_id="w1", flow_name="Echo", flow_hash="0" * 64,
                                 flow_file=FLOW.file, flow=ir.to_json(FLOW), flow_source="", input={"v": input_})
    numbered = [started] + [e.__class__(**{**e.__dict__, "seq": i + 2, "ts": 2000 + i}) for i, e in enumerate(events)]
    return numbered, fold(numbered)


def completed(value: object):
    return state_of(
        ev.ActivityScheduled(step="say", attempt=1, argv=["echo", HOSTILE], stdin={}, timeout_ms=1000),
        ev.ActivityStarted(step="say", attempt=1, pid=42, pgid=42),
        ev.ActivityCompleted(step="say", attempt=1, result=value, duration_ms=5),
        ev.VariableSet(frame="root", at=1, name="note", value=value),
        ev.WorkflowCompleted(result={"v": value, "said": value}),
        input_=value,
    )


def failed(message: str):
    return state_of(
        ev.ActivityScheduled(step="say", attempt=1, argv=["echo"], stdin={}, timeout_ms=1000),
        ev.ActivityFailed(step="say", attempt=1, error={"kind": "exit", "message": message, "exit_code": 1},
                          duration_ms=5),
        ev.WorkflowFailed(error={"kind": "step", "message": message, "step": "say", "line": 3}),
    )


def shown(renderable: object, width: int = 200) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(renderable)
    return out.getvalue()


POLICY = TimePolicy("utc")


def views(events: list, state) -> dict[str, str]:
    return {
        "list": shown(render.list_table([render.summary(state)], POLICY)),
        "inspect": shown(render.inspect_view(state, POLICY)),
        "history": shown(render.history_table(events, state.flow, POLICY)),
        "panel": shown(render.result_panel(state)),
    }


# --- literally --------------------------------------------------------------------------


def test_completed_workflow_views_show_markup_and_emoji_codes_literally():
    events, state = completed(HOSTILE)
    quoted = json.dumps(HOSTILE, ensure_ascii=False)

    out = views(events, state)
    for name, text in out.items():
        assert not any(e in text for e in EMOJI), name
    assert quoted in out["inspect"] and quoted in out["panel"]
    assert f"echo {HOSTILE}" in out["history"] and f"set note = {quoted}" in out["history"]
    assert "w1" in out["list"] and "Echo" in out["list"]


def test_failed_workflow_views_show_the_error_message_literally():
    message = f"exit code 1: {HOSTILE}"
    events, state = failed(message)

    out = views(events, state)
    for name in ("inspect", "history", "panel"):
        assert message in out[name], name
        assert not any(e in out[name] for e in EMOJI)


@pytest.mark.parametrize("text", ["[/x]", "[/some/path] done", "[bold]", "[/]", "[red]unclosed", ":smile:"])
def test_each_markup_like_text_alone_is_shown_as_is(text):
    events, state = completed(text)

    out = views(events, state)
    assert json.dumps(text) in out["inspect"] and json.dumps(text) in out["panel"]


def test_the_graph_tree_shows_flow_text_literally():
    source = 'flow G\n  step s:\n    run ["echo", "[/x] :smile:"]\n  return "[red]RED[/red]"\n'
    flow = parse_flow(source, "flows/G.flow")

    text = shown(flow_tree(flow))
    assert "[/x] :smile:" in text and '"[red]RED[/red]"' in text and "😄" not in text


# --- not more than a screenful -------------------------------------------------------------


class CountingList(list):
    """A list that counts the elements a (Python-level) JSON encoder pulls out of it."""

    pulled = 0

    def __iter__(self):
        for item in super().__iter__():
            CountingList.pulled += 1
            yield item


def test_a_huge_result_is_cut_quickly_with_a_note_saying_how_much_more_there_is():
    big = ["a"] * 1_000_000
    events, state = completed(big)
    whole = len(json.dumps({"v": big, "said": big}, ensure_ascii=False))

    began = time.monotonic()
    out = views(events, state)
    assert time.monotonic() - began < 10  # it was over a minute

    see = "see `lf inspect w1 --json`"
    for name in ("inspect", "panel"):
        assert len(out[name]) < 60_000, name
        assert f"more characters; {see})" in out[name], name
    # the note counts what is left out of the compact JSON text, exactly
    assert f"… ({whole - MAX_SHOWN_CHARS:,} more characters; {see})" in out["panel"]
    assert len(out["history"]) < 20_000


def test_cutting_a_huge_value_encodes_only_the_start_of_it():
    CountingList.pulled = 0
    value = CountingList(range(1_000_000))

    pretty, more = clip_json(value, indent=2)
    # One full pass is the C encoder measuring the compact length (it copies a list subclass
    # through __iter__); encoding it all in Python, pretty or compact, would be two more.
    assert CountingList.pulled < 1_000_000 + 20_000
    assert more == len(json.dumps(list(value))) - len(pretty)
    assert len(pretty) == MAX_SHOWN_CHARS


def test_a_value_that_fits_is_shown_whole_and_pretty():
    value = {"order": "demo-1", "items": [1, 2, 3]}
    assert clip_json(value, indent=2) == (json.dumps(value, indent=2, ensure_ascii=False), 0)
    assert clip_json(value) == (json.dumps(value, ensure_ascii=False), 0)


def test_a_value_too_long_to_show_pretty_is_shown_compact_when_that_fits():
    value = list(range(MAX_SHOWN_LINES + 50))  # more lines than fit when pretty, but short when compact
    assert clip_json(value, indent=2) == (json.dumps(value), 0)


def test_clip_text_keeps_at_most_the_line_and_character_limits():
    many_lines = "\n".join(f"line {i}" for i in range(10_000))
    text, more = clip_text(many_lines)
    assert text.count("\n") == MAX_SHOWN_LINES - 1 and text.endswith(f"line {MAX_SHOWN_LINES - 1}")
    assert len(text) + more == len(many_lines)

    assert clip_text("x" * 10_000) == ("x" * MAX_SHOWN_CHARS, 10_000 - MAX_SHOWN_CHARS)
    assert clip_text("short\ntext") == ("short\ntext", 0)


def test_a_long_error_message_is_cut_in_every_view():
    message = "\n".join(f"stderr line {i} [/x]" for i in range(5_000))
    events, state = failed(message)

    out = views(events, state)
    for name in ("inspect", "panel", "history"):
        assert "stderr line 0 [/x]" in out[name] and "stderr line 4999" not in out[name], name
        assert "more characters" in out[name], name


def test_short_json_cuts_without_encoding_everything():
    CountingList.pulled = 0
    assert short_json(CountingList(range(1_000_000)), 20) == "[0, 1, 2, 3, 4, 5, …"
    assert CountingList.pulled < 100
    assert short_json({"a": [1, 2]}) == '{"a": [1, 2]}'


def test_an_event_description_is_cut_with_a_count():
    scheduled = ev.ActivityScheduled(seq=2, ts=0, step="s", attempt=1, argv=["echo", "x" * 100_000], stdin={},
                                     timeout_ms=1)
    text = describe(scheduled)
    assert text.startswith("s: attempt 1 scheduled: echo xxx")
    assert text.endswith(f" … ({len('s: attempt 1 scheduled: echo ') + 100_000 - MAX_SHOWN_CHARS:,} more characters)")


# --- timer purposes -------------------------------------------------------------------------


@pytest.mark.parametrize("purpose, reads", [
    ("retry-2", "charge: retry attempt 2 in 1.0s"),
    ("retry-10", "charge: retry attempt 10 in 1.0s"),
    ("signal-timeout", "charge: signal timeout in 1.0s"),
    ("workflow-timeout", "charge: workflow timeout in 1.0s"),
])
def test_timer_purposes_read_as_words(purpose, reads):
    timer = ev.TimerStarted(seq=3, ts=0, timer=1, step="charge", purpose=purpose, duration_ms=1000, fire_at=1000)

    assert describe(timer) == f"{reads} (timer 1, at 00:00:01Z)"
    month = ev.TimerStarted(seq=3, ts=0, timer=1, step="s", purpose="sleep", duration_ms=30 * 86_400_000,
                            fire_at=30 * 86_400_000)
    assert describe(month) == "s: sleeping 720h00m (timer 1, until 1970-01-31 00:00:00Z)"  # a date, not today
