"""`lf completion bash|zsh|fish`: shell completion, and `lf __complete WORDS...`, which the scripts call.

The scripts are small and the same in spirit: on Tab they run ``lf __complete`` with
the words typed so far (the last one being completed, maybe empty), which prints the
candidates one per line. ``complete`` walks `lf`'s own argparse parser, so every
command and option is known without a list kept by hand, and knows what a few
arguments name: flows (flows/*.flow), workflow ids (var/workflows/, plus ``@last``),
the signals the workflow's flow waits for, schedule names and choices. Where it has
nothing to say (a file argument) it prints nothing and the shell completes file names.

Why not argcomplete: it would be a fourth runtime dependency, hooks bash first
(zsh through bashcompinit), and needs the global hook or a marker in the entry
point; this is about 150 lines with no dependency. Completion must never print an
error: any failure prints no candidates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_BASH = r"""# lf completion for bash: source <(lf completion bash)
_lf_complete() {
    local IFS=$'\n'
    COMPREPLY=($(lf __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -o nosort -F _lf_complete lf 2>/dev/null || complete -o default -F _lf_complete lf
"""

_ZSH = r"""#compdef lf
# lf completion for zsh: lf completion zsh > "${fpath[1]}/_lf" (or: source <(lf completion zsh))
_lf() {
    local -a candidates
    candidates=("${(@f)$(lf __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if (( ${#candidates} )) && [[ -n "${candidates[1]}" ]]; then
        compadd -Q -- "${candidates[@]}"
    else
        _files
    fi
}
if [ "$funcstack[1]" = "_lf" ]; then
    _lf "$@"
else
    compdef _lf lf
fi
"""

_FISH = r"""# lf completion for fish: lf completion fish > ~/.config/fish/completions/lf.fish
function __lf_complete
    set -l words (commandline -opc) (commandline -ct)
    lf __complete $words[2..-1] 2>/dev/null
end
complete -c lf -f -a '(__lf_complete)'
"""

SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}
_ID_DESTS = {"id", "ids", "parent", "run"}


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(SCRIPTS[args.shell])
    return 0


def complete(words: list[str]) -> int:
    """Print the candidates for the last of ``words`` (the words after ``lf``), one per line."""
    try:
        for candidate in candidates(words):
            sys.stdout.write(candidate + "\n")
    except Exception:  # noqa: BLE001 - completion never shows a traceback: it completes nothing
        pass
    return 0


def candidates(words: list[str]) -> list[str]:
    from localflow.cli.main import build_parser

    words = words or [""]
    current, before = words[-1], words[:-1]
    parser = build_parser()
    home = None
    path: list[str] = []
    positionals: list[str] = []
    i = 0
    while i < len(before):
        word = before[i]
        action = _option(parser, word)
        if word.startswith("-") and action is not None:
            if action.nargs != 0 and "=" not in word:
                i += 1
                if action.dest == "home" and i < len(before):
                    home = before[i]
        elif not word.startswith("-"):
            child = _subparser(parser, word)
            if child is not None and not positionals:
                parser, path = child, path + [word]
            else:
                positionals.append(word)
        i += 1
    previous = _option(parser, before[-1]) if before and before[-1].startswith("-") else None
    if previous is not None and previous.nargs != 0 and "=" not in before[-1]:
        found = _values(previous, path, positionals, home)
    elif current.startswith("-"):
        found = sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--") or len(o) == 2)
    elif _subparsers(parser) is not None and not positionals:
        found = sorted(n for n in _subparsers(parser).choices if not n.startswith("_"))
    else:
        wanted = [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
        slot = _slot(wanted, len(positionals))
        found = _values(slot, path, positionals, home) if slot is not None else []
    return [c for c in found if c.startswith(current)]


def _slot(actions: list[argparse.Action], given: int):
    """The positional argument the next word fills (the last one if it takes many)."""
    for action in actions:
        if action.nargs in ("*", "+", argparse.REMAINDER):
            return action
        if given == 0:
            return action
        given -= 1
    return None


def _subparsers(parser: argparse.ArgumentParser):
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _subparser(parser: argparse.ArgumentParser, word: str):
    sub = _subparsers(parser)
    return sub.choices.get(word) if sub is not None else None


def _option(parser: argparse.ArgumentParser, word: str):
    name = word.split("=", 1)[0]
    return next((a for a in parser._actions if name in a.option_strings), None)


def _values(action: argparse.Action, path: list[str], positionals: list[str], home: str | None) -> list[str]:
    if action.choices is not None:
        return [str(c) for c in action.choices]
    dest = action.dest
    command = path[0] if path else ""
    if dest in _ID_DESTS:
        return ["@last", *_engine(home).workflow_ids()]
    if dest == "flow" and command not in ("replay",) and action.metavar != "FILE":
        return _engine(home).flow_names()
    if dest == "name" and command == "signal" and positionals:
        return _signals(home, positionals[0])
    if dest == "name" and command == "schedule":
        from localflow.schedules import store_for

        return store_for(_engine(home).paths).names()
    return []


def _engine(home: str | None):
    from localflow.cli.common import home_of
    from localflow.engine import Engine

    return Engine(home_of(argparse.Namespace(home=home)))  # --home, $LOCALFLOW_HOME, then from here up


def _signals(home: str | None, ref: str) -> list[str]:
    """The signals the workflow's flow waits for, the ones it waits for now first."""
    from localflow.cli.control import waited_signals
    from localflow.client import Client

    engine = _engine(home)
    state = engine.state_of(Client(engine.paths.home).resolve(ref))
    from localflow.core.state import signal_waits

    now = [wait.signal for wait in signal_waits(state)]
    return list(dict.fromkeys(now + sorted(waited_signals(state.flow))))
