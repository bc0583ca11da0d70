"""The price list behind examples/pysteps/pricing.py (a sibling module, imported from flows/)."""

PRICES = {"apple": 0.5, "pear": 0.75, "fig": 2.0}
