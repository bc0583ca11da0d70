"""The `lf` command line: one module per command group; render.py builds what they print."""
