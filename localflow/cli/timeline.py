"""`lf timeline ID`: the intervals of localflow/timeline.py drawn as a chart that fits the width.

One row per interval, in order of start: a label, a bar on a shared time axis (from the
workflow's start to its end, or to now while it runs) and what it came to. An attempt's
row also draws the retry wait before it (``░``), the time it was scheduled or queued
(``░``) and the time its process ran (``█``). Sleeps are ``▒``, signal waits ``┄``, signals
and other instants ``◆``. Piped or with NO_COLOR the bars are ASCII (``#`` ran, ``.``
waited, ``=`` slept, ``-`` waited for a signal, ``*`` an instant) and nothing is coloured.

``timeline_view`` returns a renderable and prints nothing (tests render it at 80 and 200
columns).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from itertools import groupby
from typing import Union

from rich.console import Group
from rich.text import Text

from localflow.timeline import Interval, Timeline, timeline

_STYLE = {"completed": "green", "failed": "red", "running": "cyan", "scheduled": "yellow", "queued": "yellow",
          "waiting": "yellow", "fired": "blue", "received": "magenta", "timed out": "red", "stopped": "magenta",
          "cancelled": "dim", "acquired": "blue", "detached": "blue", "terminated": "bold magenta"}
_MARK = {"completed": "✓", "failed": "✗", "timed out": "✗", "stopped": "■"}
_PLAIN_MARKS = str.maketrans({"✓": "ok", "✗": "x", "■": "stopped", "…": "..."})  # piped: ASCII through and through


@dataclass(frozen=True)
class Glyphs:
    ran: str
    waited: str
    slept: str
    signal_wait: str
    instant: str
    open_end: str

    @classmethod
    def of(cls, plain: bool) -> "Glyphs":
        return cls("#", ".", "=", "-", "*", ">") if plain else cls("█", "░", "▒", "┄", "◆", "▶")


@dataclass(frozen=True)
class _Row:
    label: str
    summary: str
    interval: Interval
    wait_start: Union[int, None] = None  # a retry wait drawn before the attempt, on its row


def rows_of(line: Timeline) -> list[_Row]:
    """The rows to draw: a retry wait joins the row of the attempt it waited for."""
    retries = {(i.step, i.attempt): i for i in line.intervals if i.kind == "retry"}
    rows = []
    for item in line.intervals:
        if item.kind == "retry" and any(a.kind == "attempt" and (a.step, a.attempt) == (item.step, item.attempt)
                                        for a in line.intervals):
            continue
        wait = retries.get((item.step, item.attempt)) if item.kind == "attempt" else None
        rows.append(_Row(item.label, _summary(item, wait), item, wait.start if wait is not None else None))
    return rows


def _summary(item: Interval, wait: Union[Interval, None], now: Union[int, None] = None) -> str:
    span = _duration
    if item.end is None:
        took = "so far" if now is None else span(now - item.start)
        return f"{item.status} ({took})" if now is not None else item.status
    mark = _MARK.get(item.status, "")
    if item.kind == "attempt":
        ran = item.end - (item.run_start if item.run_start is not None else item.start)
        parts = [f"waited {span(item.start - wait.start)}"] if wait is not None else []
        parts.append(f"{span(ran)}")
        return f"{' + '.join(parts)} {mark or item.status}".strip()
    if item.start == item.end:
        return item.status
    return f"{span(item.end - item.start)} {mark or item.status}".strip()


def timeline_view(line: Timeline, now_ms: int, width: int, plain: bool = False) -> Group:
    """The chart, ``width`` columns wide (at least 40)."""
    span = _duration
    width = max(width, 40)
    glyphs = Glyphs.of(plain)
    end = line.end if line.end is not None else max([now_ms, line.start] + [i.end or 0 for i in line.intervals])
    total = max(end - line.start, 1)
    rows = rows_of(line)
    summaries = [r.summary if r.interval.end is not None else _summary(r.interval, None, now_ms) for r in rows]
    if plain:
        summaries = [s.translate(_PLAIN_MARKS) for s in summaries]
    label_w = min(max(len(r.label) for r in rows), max(12, width // 4))
    summary_w = min(max(len(s) for s in summaries), max(10, width // 4))
    bar_w = width - label_w - summary_w - 4
    if bar_w < 12:  # too narrow for the summaries: the bars first
        summary_w, bar_w = 0, width - label_w - 2
    scale = Scale(line.start, total, bar_w)
    status = line.status if line.end is not None else f"{line.status}, {span(total)} so far"
    head = Text.assemble((line.workflow_id, "bold"), f"  {line.flow}  ", (status, _STYLE.get(line.status, "")),
                         f"  {span(total)}" if line.end is not None else "",
                         (f"  (one column: {span(max(total // bar_w, 1))})", "dim"))
    head.truncate(width, overflow="ellipsis" if not plain else "crop")  # the title fits the width too
    parts = [head, _axis(scale, label_w, bar_w)]
    for row, summary in zip(rows, summaries):
        text = Text(_fit(row.label, label_w, plain).ljust(label_w) + "  ")
        text.append_text(_bar(row, scale, glyphs, now_ms))
        if summary_w:
            text.append("  " + _fit(summary, summary_w, plain), style=_STYLE.get(row.interval.status, ""))
        parts.append(text)
    if not plain:
        parts.append(Text(f"{glyphs.ran} ran  {glyphs.waited} scheduled, queued or retry wait  {glyphs.slept} "
                          f"sleep or timer  {glyphs.signal_wait} waiting for a signal  {glyphs.instant} instant",
                          style="dim"))
    return Group(*parts)


@dataclass(frozen=True)
class Scale:
    origin: int
    total: int
    columns: int

    def col(self, ms: int) -> int:
        return min(self.columns - 1, max(0, (ms - self.origin) * self.columns // self.total))


_STEPS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000,
             300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000,
             172_800_000, 604_800_000)


def _axis(scale: Scale, label_w: int, bar_w: int) -> Text:
    """Ticks at round times since the start (``|0``, ``|500ms``, ``|1.0s``...), about every 14 columns."""
    wanted = scale.total * 14 / max(bar_w, 1)
    step = next((s for s in _STEPS_MS if s >= wanted), _STEPS_MS[-1])
    line = [" "] * bar_w
    at = 0
    while at <= scale.total:
        col = scale.col(scale.origin + at)
        mark = "|" + ("0" if at == 0 else _duration(at))
        if col + len(mark) <= bar_w and all(c == " " for c in line[max(col - 1, 0):col + len(mark)]):
            line[col:col + len(mark)] = list(mark)
        at += step
    return Text(" " * (label_w + 2) + "".join(line), style="dim")


def _duration(ms: int) -> str:
    from localflow.core.timefmt import format_span

    return format_span(ms)


def _bar(row: _Row, scale: Scale, glyphs: Glyphs, now_ms: int) -> Text:
    item = row.interval
    cells = [(" ", "")] * scale.columns
    end = item.end if item.end is not None else now_ms
    style = _STYLE.get(item.status, "")

    def paint(start: int, stop: int, char: str, paint_style: str) -> None:
        for col in range(scale.col(start), scale.col(stop) + 1):
            cells[col] = (char, paint_style)

    if item.kind == "attempt":
        if row.wait_start is not None:
            paint(row.wait_start, item.start, glyphs.waited, "dim")
        run = item.run_start if item.run_start is not None else (item.end if item.end is not None else None)
        if run is not None and run > item.start:
            paint(item.start, run, glyphs.waited, "dim")
        if item.run_start is not None or item.end is not None:
            paint(run if run is not None else item.start, end, glyphs.ran, style)
    elif item.start == end and item.end is not None:
        paint(item.start, item.start, glyphs.instant, style)
    else:
        char = {"timer": glyphs.slept, "retry": glyphs.waited, "deadline": glyphs.slept, "lock": glyphs.waited,
                "wait": glyphs.signal_wait, "listen": glyphs.signal_wait}.get(item.kind, glyphs.ran)
        paint(item.start, end, char, style if item.kind in ("workflow", "child") else "dim")
    if item.end is None:
        cells[scale.col(end)] = (glyphs.open_end, style)
    text = Text()
    for cell_style, run in groupby(cells, key=lambda cell: cell[1]):  # one span per run of a style
        text.append("".join(char for char, _ in run), style=cell_style)
    return text


def _fit(text: str, width: int, plain: bool = False) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - 3, 0)] + "..." if plain else text[: max(width - 1, 0)] + "…"


# --- the command -----------------------------------------------------------------------


def cmd_timeline(args: argparse.Namespace) -> int:
    import time

    from localflow.cli.common import console, engine_for, resolve
    from localflow.cli.output import emit_list, output_of, plain, print_json

    engine = engine_for(args)
    workflow_id = resolve(engine, args.id)
    line = timeline(engine.load(workflow_id).events)
    fmt = output_of(args)
    if fmt == "json":
        print_json(line.to_json())
        return 0
    rows = line.to_json()["intervals"]
    if fmt != "text":
        emit_list(fmt, rows, lambda: None, columns=list(rows[0].keys()), id_key="label")
        return 0
    out = console()
    width = args.width or out.width
    if args.width:
        out.width = args.width
    out.print(timeline_view(line, int(time.time() * 1000), width, plain=plain()), soft_wrap=True)
    return 0
