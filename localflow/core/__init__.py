"""The pure core: events, commands, state, fold/evolve, decide, retry math, expressions.

Nothing in this package touches the world: no clock, no randomness, no I/O.
Time arrives as event timestamps; ``tests/unit/test_core_purity.py`` enforces it.
"""
