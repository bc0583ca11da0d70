"""Running workflows: the executor (shared with `lf run`), the watchdog hints, the drop folder, the supervisor loop."""
