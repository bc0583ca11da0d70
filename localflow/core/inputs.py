"""Workflow input: check what the user gave against the flow's inputs and fill defaults (pure)."""

from __future__ import annotations

from typing import Any, Mapping

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
            values[item.name] = given[item.name]
        elif item.default is not None:
            try:
                values[item.name] = expr.evaluate(item.default, {})
            except ExpressionError as exc:
                raise InputError(f"default of input '{item.name}' cannot be evaluated: {exc}") from None
        else:
            missing.append(item.name)
    if missing:
        flags = " ".join(f"-i {name}=..." for name in missing)
        raise InputError(f"flow {flow.name} needs input {', '.join(repr(m) for m in missing)}: pass {flags}")
    return values


def missing_required(flow: ir.Flow) -> list[str]:
    """Inputs without a default: a flow with any cannot start from its defaults alone."""
    return [i.name for i in flow.inputs if i.default is None]
