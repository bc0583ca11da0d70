"""The `lf` command line: main.py defines every command's arguments and imports the module that runs a
command (one per command group) only when it runs; render.py builds what they print."""
