"""Secrets and a step's environment, the pure part: references, names, checks (no I/O).

``secret("API_TOKEN")`` in a flow expression evaluates to the *reference*
``${secret:API_TOKEN}``, an ordinary string: it can be embedded in a larger one
(``f"Bearer {secret('API_TOKEN')}"``) and is what the history, the ``.in`` log and
``lf inspect`` hold. Only the runner, at spawn, replaces a reference with the value
(localflow/runner/environment.py reads it from ``LF_SECRET_<NAME>``).

The name must be a string literal (checked when the flow is parsed), so the secrets a
step may receive are known from the flow alone: ``ActivityScheduled.secrets`` lists
them, and the runner replaces references to those names only. A value from outside
(a workflow input holding the text ``${secret:OTHER}``) therefore never pulls in a
secret its step does not name.

``check_env`` / ``check_cwd`` hold the evaluated ``env`` and ``cwd`` clauses of a step
to their shape; they raise ``InvalidValue`` with the message to show.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from localflow.errors import InvalidValue

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
REFERENCE = re.compile(r"\$\{secret:([A-Za-z_][A-Za-z0-9_]{0,127})\}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
RESERVED_ENV_PREFIX = "LF_"  # the engine's own variables (LF_WORKFLOW_ID, LF_ATTEMPT_TAG, ...)
MAX_ENV_ENTRIES = 256


def reference(name: str) -> str:
    """The reference ``secret(name)`` evaluates to."""
    return "${secret:" + name + "}"


def names_in(value: Any) -> set[str]:
    """Every secret name referenced in the strings of a JSON value (keys included)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "${secret:" in item:
                found.update(REFERENCE.findall(item))
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return found


def substitute(value: Any, values: dict[str, str]) -> Any:
    """``value`` with every reference to a name in ``values`` replaced by its value (others kept)."""
    if isinstance(value, str):
        if "${secret:" not in value:
            return value
        return REFERENCE.sub(lambda m: values.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {substitute(k, values): substitute(v, values) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(v, values) for v in value]
    return value


def redact(value: Any, values: dict[str, str]) -> Any:
    """``value`` with every secret value in ``values`` put back as its reference: what a process
    says (its error output, its result) may repeat a secret it was given, and nothing of it may
    reach a history. The inverse of ``substitute``."""
    if not values:
        return value
    if isinstance(value, str):
        for name, secret in sorted(values.items(), key=lambda item: -len(item[1])):
            if secret and secret in value:
                value = value.replace(secret, reference(name))
        return value
    if isinstance(value, dict):
        return {redact(k, values): redact(v, values) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, values) for v in value]
    return value


def refuse_references(value: Any, what: str) -> None:
    """Data from outside (an input, a signal) may not hold a secret reference: a step that reads
    that secret would have it filled in where the flow never put it. InvalidValue if it does."""
    if names_in(value):
        from localflow.errors import InvalidValue

        raise InvalidValue(f"{what} holds a secret reference ('${{secret:...}}'); only a flow's own "
                           "secret(\"NAME\") may make one")


def check_env(value: Any, to_text: Callable[[Any], str] = str) -> dict[str, str]:
    """An ``env`` clause's value: an object of variable names to strings (numbers and booleans
    are written as text by ``to_text``). Names starting with ``LF_`` are the engine's."""
    if not isinstance(value, dict):
        raise InvalidValue(f"env must be an object of variable names to strings, e.g. env {{\"LANG\": \"C\"}}; "
                           f"got {type(value).__name__ if value is not None else 'null'}")
    if len(value) > MAX_ENV_ENTRIES:
        raise InvalidValue(f"env has {len(value)} variables, over the limit of {MAX_ENV_ENTRIES}")
    out: dict[str, str] = {}
    for name, item in value.items():
        if not ENV_NAME.fullmatch(name):
            raise InvalidValue(f"env: {name[:60]!r} is not a variable name (letters, digits and _, "
                               "not starting with a digit)")
        if name.startswith(RESERVED_ENV_PREFIX):
            raise InvalidValue(f"env: {name} is reserved: names starting with LF_ are set by LocalFlow")
        if isinstance(item, bool) or item is None or isinstance(item, (dict, list)):
            raise InvalidValue(f"env: the value of {name} must be a string or a number, not "
                               f"{'null' if item is None else type(item).__name__}")
        text = item if isinstance(item, str) else to_text(item)
        if "\x00" in text:
            raise InvalidValue(f"env: the value of {name} holds a NUL character")
        out[name] = text
    return out


def check_cwd(value: Any) -> str:
    """A ``cwd`` clause's value: a relative path inside the LocalFlow home, without ``..``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue("cwd must be a non-empty string: a folder relative to the LocalFlow home, "
                           "e.g. cwd \"work\"")
    if "\x00" in value:
        raise InvalidValue("cwd holds a NUL character")
    if value.startswith("/") or value.startswith("~"):
        raise InvalidValue(f"cwd {value[:80]!r} is absolute: it must be a folder relative to the LocalFlow home")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidValue(f"cwd {value[:80]!r} goes up with '..': it must stay inside the LocalFlow home")
    return "/".join(parts) or "."


def sorted_names(names: Iterable[str]) -> list[str] | None:
    """The ``secrets`` field of an ActivityScheduled: sorted names, or None when there are none."""
    found = sorted(set(names))
    return found or None
