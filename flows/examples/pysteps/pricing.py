"""The Python function behind flows/examples/PythonStep.flow (see docs/activities.md).

A ``call`` step imports modules relative to the home's ``flows/`` folder, so this file,
flows/examples/pysteps/pricing.py, is ``examples.pysteps.pricing`` and its sibling is
imported the same way.
"""

from localflow import activity

from examples.pysteps.catalog import PRICES


class UnknownItem(Exception):
    """An item without a price; the flow catches it with ``catch error "UnknownItem"``."""


def quote(items, currency="EUR"):
    """Price ``items`` ({"name": quantity}); the return value becomes the step's result."""
    me = activity.info()
    print(f"pricing {len(items)} items for {me.workflow_id}, attempt {me.attempt}")  # -> logs/quote.1.out
    lines = []
    for name, quantity in sorted(items.items()):
        if name not in PRICES:
            raise UnknownItem(f"no price for {name!r}")
        lines.append({"item": name, "quantity": quantity, "amount": round(PRICES[name] * quantity, 2)})
    total = round(sum(line["amount"] for line in lines), 2)
    return {"lines": lines, "total": total, "currency": currency, "quote_id": me.idempotency_key}
