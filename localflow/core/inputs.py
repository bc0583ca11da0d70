"""Workflow input: check what the user gave against the flow's inputs and fill defaults (pure)."""

from __future__ import annotations

import json
from typing import Any, Mapping, Union

from localflow import ir
from localflow.core import expr
from localflow.errors import ExpressionError, InputError


def resolve_input(flow: ir.Flow, given: Mapping[str, Any]) -> dict[str, Any]:
    """The complete input of a new workflow, or InputError saying what is wrong."""
    if not isinstance(given, Mapping):
        raise InputError(f"input for {flow.name} must be a JSON object, got {type(given).__name__}")
    known = [i.name for i in flow.inputs]
    unknown = sorted(set(given) - set(known))
    if unknown:
        listing = ", ".join(known) if known else "none"
        raise InputError(f"unknown input '{unknown[0]}' for flow {flow.name} (its inputs: {listing})")
    values: dict[str, Any] = {}
    missing = []
    for item in flow.inputs:
        if item.name in given:
            value = values[item.name] = given[item.name]
            default = default_of(item)
            if kind_of(default) is not None and kind_of(value) != kind_of(default):
                raise InputError(f"input '{item.name}' of flow {flow.name} is {_KIND_WORDS[kind_of(default)]} (its "
                                 f"default is {_shown(default)}), got {_KIND_WORDS[kind_of(value)]}: {_shown(value)}")
        elif item.default is not None:
            values[item.name] = default_of(item)
        else:
            missing.append(item.name)
    if missing:
        flags = " ".join(f"-i {name}=..." for name in missing)
        raise InputError(f"flow {flow.name} needs input {', '.join(repr(m) for m in missing)}: pass {flags}")
    return values


_KIND_WORDS = {None: "null", "text": "text", "number": "a number", "boolean": "true or false", "list": "a list", "object": "an object",
      "null": "null"}


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:59] + "…"


def kind_of(value: Any) -> Union[str, None]:
    """The kind an input's default gives it (None: any value; a default of null says nothing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, list) else "object"


def default_of(item: ir.Input) -> Any:
    """The value of an input's default (None without one); InputError if it cannot be evaluated."""
    if item.default is None:
        return None
    try:
        return expr.evaluate(item.default, {})
    except ExpressionError as exc:
        raise InputError(f"default of input '{item.name}' cannot be evaluated: {exc}") from None


def missing_required(flow: ir.Flow) -> list[str]:
    """Inputs without a default: a flow with any cannot start from its defaults alone."""
    return [i.name for i in flow.inputs if i.default is None]
