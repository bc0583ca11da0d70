"""Flow text -> logical lines: the only place that knows about comments, blanks and tabs.

A logical line is one statement: its indentation, its text (comments removed),
and where it starts. Like Python, a line continues over physical lines while a
bracket ``( [ {`` or a triple-quoted string is open, so a multi-line
``return {...}`` is one logical line whose text keeps the newlines and the
continuation lines whole, so every character keeps its (line, col).

Never raises: problems come back as (line, col, message) for the parser to report.
Also the few word helpers the parser uses to read a logical line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from localflow.errors import Diagnostic

NEWLINE = re.compile(r"\r\n|\r|\n")
TAB_WIDTH = 8  # only used to keep going after a tab error
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class LogicalLine:
    indent: int  # width of the leading spaces of its first physical line
    text: str  # from the first non-blank character; physical lines joined by "\n"
    line: int  # 1-based physical line where it starts
    col: int  # 1-based column of text[0]

    def position(self, offset: int) -> tuple[int, int]:
        """(line, col) of the character at ``offset`` in ``text``."""
        newline = self.text.rfind("\n", 0, offset)
        if newline < 0:
            return self.line, self.col + offset
        return self.line + self.text.count("\n", 0, offset), offset - newline


@dataclass
class _Scan:
    """What is open at the end of a physical line: a string quote and/or brackets."""

    quote: str = ""
    depth: int = 0

    @property
    def continues(self) -> bool:
        return bool(self.quote) or self.depth > 0


def physical_lines(text: str) -> list[str]:
    return NEWLINE.split(text)


def diagnostic(file: str, source_lines: list[str], line: int, col: int, message: str) -> Diagnostic:
    """A Diagnostic carrying the physical line it points into (for the caret excerpt)."""
    source_line = source_lines[line - 1] if 0 < line <= len(source_lines) else ""
    return Diagnostic(file, line, max(col, 1), message, source_line)


def skip(text: str, index: int) -> int:
    """The index of the first non-blank character from ``index`` (or the end)."""
    while index < len(text) and text[index] in " \t":
        index += 1
    return index


def word(text: str, index: int, stops: str) -> tuple[str, int, int]:
    """The next blank-delimited word from ``index``, ending early at any of ``stops``: (word, start, end)."""
    start = end = skip(text, index)
    while end < len(text) and not text[end].isspace() and text[end] not in stops:
        end += 1
    return text[start:end], start, end


def first_word(text: str) -> tuple[str, int]:
    """A line's keyword and where it ends; end 0 when the line does not start with a name."""
    match = IDENT.match(text)
    if match:
        return match.group(), match.end()
    found = text.split(None, 1)[0] if text.strip() else text
    return found[:20], 0


def lex(text: str) -> tuple[list[LogicalLine], list[tuple[int, int, str]]]:
    """Split ``text`` into logical lines; also return (line, col, message) problems."""
    lines: list[LogicalLine] = []
    problems: list[tuple[int, int, str]] = []
    scan = _Scan()
    start: tuple[int, int, int] | None = None  # (line, col, indent) of the open logical line
    parts: list[str] = []
    for number, raw in enumerate(physical_lines(text), start=1):
        continuing = scan.continues
        content = raw[: _scan_line(raw, scan)]
        if not scan.quote:
            content = content.rstrip()
        if continuing:
            parts.append(content)
        elif content.strip():
            indent, width = _indent(raw, number, problems)
            start, parts = (number, indent + 1, width), [content[indent:]]
        if start is not None and not scan.continues:
            lines.append(LogicalLine(start[2], "\n".join(parts), start[0], start[1]))
            start, parts = None, []
    if start is not None:
        lines.append(LogicalLine(start[2], "\n".join(parts), start[0], start[1]))
    return lines, problems


def _indent(raw: str, number: int, problems: list[tuple[int, int, str]]) -> tuple[int, int]:
    """(characters, width) of the leading blanks; a tab is reported once per line."""
    count = len(raw) - len(raw.lstrip(" \t"))
    width = 0
    for index, char in enumerate(raw[:count]):
        if char == "\t":
            if "\t" not in raw[:index]:
                problems.append((number, index + 1, "indent with spaces, not tabs"))
            width = (width // TAB_WIDTH + 1) * TAB_WIDTH
        else:
            width += 1
    return count, width


def _scan_line(raw: str, scan: _Scan) -> int:
    """Update ``scan`` over one physical line; return where its comment starts (or its length)."""
    i, n = 0, len(raw)
    while i < n:
        char = raw[i]
        if scan.quote:
            if char == "\\":
                i += 2
            elif raw.startswith(scan.quote, i):
                i += len(scan.quote)
                scan.quote = ""
            else:
                i += 1
            continue
        if char == "#":
            return i
        if char in "\"'":
            scan.quote = char * 3 if raw.startswith(char * 3, i) else char
            i += len(scan.quote)
            continue
        if char in "([{":
            scan.depth += 1
        elif char in ")]}":
            scan.depth = max(scan.depth - 1, 0)
        i += 1
    if len(scan.quote) == 1:
        scan.quote = ""  # an unclosed one-line string ends here; the expression parser reports it
    return n
