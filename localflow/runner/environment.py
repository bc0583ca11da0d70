"""What an attempt's process gets from the machine: its environment, its secrets, its folder.

- **The allowlist.** A ``run`` step does not inherit everything the supervisor (or
  ``lf run``) has: only ``PATH``, ``HOME``, ``LANG``, ``LC_*``, ``TZ``, ``TMPDIR``,
  ``USER``, ``LOGNAME``, ``SHELL``, ``TERM``, ``LOCALFLOW_HOME``, the ``LF_*`` variables
  (but never ``LF_SECRET_*``), the names listed in ``LF_PASS_ENV`` (comma-separated;
  ``NAME*`` passes every variable starting with NAME), then the step's ``env`` clause
  and LocalFlow's own ``LF_WORKFLOW_ID`` etc. Workers for ``call`` steps start with the
  same allowlisted environment, so a call's ``os.environ`` is the same as a run step's.
- **Secrets.** ``secret("NAME")`` is the reference ``${secret:NAME}`` in the history
  (core/secrets.py); here, at spawn, each reference to a name the step declared is
  replaced by the value of ``LF_SECRET_NAME`` in this process's environment. A missing
  one refuses the spawn (``SpawnRefused``): the attempt fails with kind ``spawn``.
- **cwd.** The step's ``cwd`` is a folder inside the LocalFlow home; after following
  symlinks it must still be inside it, and it must exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Union

from localflow.core import secrets
from localflow.errors import LocalFlowError

ALLOWED = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM",
                     "LOCALFLOW_HOME"})
ALLOWED_PREFIXES = ("LC_", "LF_")
SECRET_PREFIX = "LF_SECRET_"
PASS_ENV = "LF_PASS_ENV"


class SpawnRefused(LocalFlowError):
    """The attempt cannot be started as the flow asks (a missing secret, a bad cwd): kind ``spawn``."""


def passed(name: str, extra: tuple[str, ...] = ()) -> bool:
    """Does variable ``name`` pass the allowlist (``extra``: the ``LF_PASS_ENV`` entries)?"""
    if name.startswith(SECRET_PREFIX):
        return False
    if name in ALLOWED or name.startswith(ALLOWED_PREFIXES):
        return True
    return any(name == e or (e.endswith("*") and len(e) > 1 and name.startswith(e[:-1])) for e in extra)


def pass_list(environ: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(e.strip() for e in environ.get(PASS_ENV, "").split(",") if e.strip())


def inherited(environ: Union[Mapping[str, str], None] = None) -> dict[str, str]:
    """The part of ``environ`` (default: this process's) an attempt inherits."""
    environ = os.environ if environ is None else environ
    extra = pass_list(environ)
    return {k: v for k, v in environ.items() if passed(k, extra)}


def secret_values(names: Any, environ: Union[Mapping[str, str], None] = None) -> dict[str, str]:
    """The values of the secrets ``names`` (from ``LF_SECRET_<NAME>``); SpawnRefused names the missing."""
    environ = os.environ if environ is None else environ
    values, missing = {}, []
    for name in names or ():
        value = environ.get(SECRET_PREFIX + str(name))
        if value is None:
            missing.append(str(name))
        else:
            values[str(name)] = value
    if missing:
        listed = ", ".join(f"{n} (set {SECRET_PREFIX}{n})" for n in missing)
        raise SpawnRefused(f"missing secret{'s' if len(missing) > 1 else ''} {listed} in the environment of "
                           "the supervisor or `lf run`")
    return values


def resolve(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` with the references to ``values``' names filled in (core/secrets.substitute)."""
    return secrets.substitute(value, dict(values)) if values else value


def step_environment(env: Any, values: Mapping[str, str], engine_vars: Mapping[str, str],
                     environ: Union[Mapping[str, str], None] = None) -> dict[str, str]:
    """The whole environment of a run step: the allowlist, its ``env`` (secrets filled in), LocalFlow's."""
    out = inherited(environ)
    for name, text in (env or {}).items():
        out[str(name)] = str(resolve(text, values))
    out.update(engine_vars)
    return out


def working_dir(home: Path, cwd: Any) -> Path:
    """The folder a run step starts in: the home, or its ``cwd`` inside the home (checked again here:
    a history is data, and a symlink may point anywhere)."""
    if cwd is None:
        return Path(home)
    try:
        relative = secrets.check_cwd(cwd)
    except LocalFlowError as exc:
        raise SpawnRefused(str(exc)) from None
    root = Path(home).resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise SpawnRefused(f"cwd {cwd!r} leads outside the LocalFlow home (through a symlink)")
    if not target.is_dir():
        raise SpawnRefused(f"cwd {cwd!r}: no such folder in the LocalFlow home")
    return target
