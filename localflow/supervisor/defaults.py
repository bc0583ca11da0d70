"""The supervisor's default timings, in a module of their own so `lf supervise --help` can show them
without importing the supervisor (its watchdog, filelock and engine imports)."""

DEFAULT_RESCAN_S = 5.0  # full rescan period: what file events missed is caught this often
DEFAULT_GRACE_S = 5.0  # on stop or timeout: seconds between SIGTERM and SIGKILL
