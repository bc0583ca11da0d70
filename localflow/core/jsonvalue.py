"""What a workflow value may be: JSON that every part of LocalFlow can store, fold and show.

One rule for every entry point (``-i``, ``--input``, ``--data``, drop-folder
requests, activity results, values a flow computes): a value is JSON (null,
bool, int, float, str, list, object with string keys) with

- no NaN or Infinity (JSON has no form for them; ``1e999`` parses as Infinity),
- no string that is not valid Unicode (a lone surrogate cannot be written as UTF-8),
- at most ``MAX_DEPTH`` levels of nesting (deeper values overflow Python's
  recursion in the encoder, the decoder and the expression evaluator),
- integers of at most ``MAX_INT_DIGITS`` digits (Python's own int/str limit differs
  between versions and settings; this one does not).

The checks are iterative, so a 10,000-deep value gives an error, never a
``RecursionError``. Pure: no I/O.
"""

from __future__ import annotations

import json
import math
from typing import Any

from localflow.errors import InvalidValue

MAX_DEPTH = 64
MAX_INT_DIGITS = 4000
_MAX_INT = 10 ** MAX_INT_DIGITS
MAX_EVENT_BYTES = 8 * 1024 * 1024  # one history line, envelope included
_ENVELOPE_BYTES = 64 * 1024  # room left for seq, ts, type, crc and field names


def check_value(value: Any, what: str) -> Any:
    """Return ``value`` if it is storable JSON (see the module rules), else raise InvalidValue."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth > MAX_DEPTH:
                raise InvalidValue(f"{what} is nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidValue(f"{what} has a non-string key {key!r}")
                    _check_text(key, what)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item, what)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidValue(f"{what} holds {item!r}, which JSON cannot store")
        elif isinstance(item, int) and not isinstance(item, bool) and not -_MAX_INT < item < _MAX_INT:
            raise InvalidValue(f"{what} holds an integer of more than {MAX_INT_DIGITS} digits")
        elif item is not None and not isinstance(item, (bool, int)):
            raise InvalidValue(f"{what} holds a {type(item).__name__}, which is not a JSON value")
    return value


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"{what} holds text that is not valid Unicode (a lone surrogate)") from None


def _reject_constant(name: str) -> Any:
    raise InvalidValue(f"holds {name}, which JSON cannot store")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidValue(f"holds the number {text}, too large for JSON")
    return number


def parse_json(text: str | bytes, what: str) -> Any:
    """Parse JSON text and check it (module rules); InvalidValue says what is wrong and where."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidValue(f"{what} is not UTF-8 text") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except InvalidValue as exc:
        raise InvalidValue(f"{what} {exc}") from None
    except RecursionError:
        raise InvalidValue(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise InvalidValue(f"{what} is not valid JSON: {exc}") from None
    return check_value(value, what)



def check_command(command: Any, event_name: str) -> None:
    """Raise InvalidValue if a decision's fields could not be recorded as one history line.

    Pure, so deciding and replaying agree: a value a flow computes that is too large, too
    deep or not JSON fails the workflow with this message instead of stalling its writer.
    """
    what = f"event {event_name}"
    size = 0
    for name in getattr(command, "__dataclass_fields__", {}):
        value = check_value(getattr(command, name), f"{what} field {name!r}")
        size += len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > MAX_EVENT_BYTES - _ENVELOPE_BYTES:
        raise InvalidValue(f"{what} is {size} bytes, over the limit of {MAX_EVENT_BYTES - _ENVELOPE_BYTES} bytes")
