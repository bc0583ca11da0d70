"""LocalFlow: a deterministic, Temporal-inspired durable workflow engine for one machine and a folder."""

__version__ = "0.1.0"
