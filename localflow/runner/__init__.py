"""Activity execution: each attempt a subprocess in its own process group (subprocess_runner)."""
