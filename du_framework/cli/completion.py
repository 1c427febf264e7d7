"""``unfold completion bash|zsh`` (a completion script) and the hidden ``unfold __complete KIND``.

The script holds the subcommands and their options (taken from the parser when it
is generated); the names it completes (problems, solvers, schedules, experiments,
metrics and ``--set`` keys) it asks ``unfold __complete KIND`` for at completion
time, so a newly installed plugin's names appear without regenerating the script.
"""

from __future__ import annotations

import argparse
import dataclasses

from .. import __version__

from ._common import KINDS, SETTINGS, load_registry

COMPLETE_COMMAND = "__complete"
# What ``unfold __complete KIND`` prints, one name a line.
COMPLETE_KINDS = ("problem", "solver", "schedule", "experiment", "metric", "key", "component")
HIDDEN_COMMANDS = ("docs", COMPLETE_COMMAND)  # left out of --help and of the completion


def _option_names(options_cls) -> list[str]:
    if options_cls is None or not dataclasses.is_dataclass(options_cls):
        return []
    return [f.name for f in dataclasses.fields(options_cls)]


def config_keys(registry=None) -> list[str]:
    """The ``--set`` keys: ``train.*`` (with every schedule's options), ``evaluation.*``, ``problem.*``.

    ``problem.KEY`` for the options of every installed problem; ``solvers.LABEL.KEY``
    depends on the configuration and is left out.
    """
    from ..engine.settings import EvaluationSettings, TrainSettings

    registry = registry or load_registry()
    keys = {f"train.{name}" for name in _option_names(TrainSettings)}
    for name in registry.entries["schedule"]:
        keys.update(f"train.{key}" for key in _option_names(getattr(registry.schedule(name), "Options", None)))
    keys.update(f"evaluation.{name}" for name in _option_names(EvaluationSettings))
    keys.add("problem.name")
    for name in registry.entries["problem"]:
        keys.update(f"problem.{key}" for key in _option_names(getattr(registry.problem(name), "Options", None)))
    return sorted(keys)


def complete_names(kind: str, registry=None) -> list[str]:
    """The names ``unfold __complete KIND`` prints (see :data:`COMPLETE_KINDS`)."""
    registry = registry or load_registry()
    if kind in KINDS or kind == "experiment":
        return sorted(registry.entries[kind])
    if kind == "metric":
        return sorted({m.name for name in registry.entries["problem"] for m in registry.problem(name).metrics})
    if kind == "key":
        return config_keys(registry)
    if kind == "component":  # what unfold list --options takes
        return list(SETTINGS) + sorted({n for k in KINDS for n in registry.entries[k]})
    raise ValueError(f"unknown kind {kind!r}; known: {', '.join(COMPLETE_KINDS)}")


def cmd_complete(args) -> int:
    """Print the names of one kind; print nothing (exit 0) when the registry cannot be read: never break a shell."""
    try:
        names = complete_names(args.kind)
    except Exception:  # noqa: BLE001 - a completion must not print a traceback into the user's prompt
        return 0
    if names:
        print("\n".join(names))
    return 0


def _commands(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Each visible subcommand with its option strings (``--help`` included)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = {}
    for name, subparser in sub.choices.items():
        if name in HIDDEN_COMMANDS:
            continue
        options = []
        for action in subparser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            options += [o for o in action.option_strings if o.startswith("--")]
        commands[name] = options
    return commands


_BASH = r"""# bash completion for unfold (du-framework __VERSION__)
# Install: add this line to ~/.bashrc:   eval "$(unfold completion bash)"
# Names (problems, solvers, schedules, experiments, --set keys) come from `unfold __complete KIND`
# when you press TAB, so newly installed plugins are completed without regenerating this script.

_unfold_names() {
    command "$1" __complete "$2" 2>/dev/null
}

_unfold_value_kind() {  # the kind of name that is the value of the --set key $1, if any
    case "$1" in
        problem.name) echo problem ;;
        train.schedule) echo schedule ;;
        solvers.*.name) echo solver ;;
    esac
}

_unfold() {
    local exe="${COMP_WORDS[0]}" cur="${COMP_WORDS[COMP_CWORD]}" prev="" cmd="" kind
    (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"
    (( COMP_CWORD > 1 )) && cmd="${COMP_WORDS[1]}"
    COMPREPLY=()

    # --set KEY=VALUE: bash splits the word at '=' (it is in COMP_WORDBREAKS)
    if [[ "$cur" == "=" || "$prev" == "=" ]]; then
        local at=$((COMP_CWORD - 1)) value="$cur"
        if [[ "$cur" != "=" ]]; then at=$((COMP_CWORD - 2)); else value=""; fi
        if (( at > 0 )) && [[ "${COMP_WORDS[at-1]}" == "--set" ]]; then
            kind="$(_unfold_value_kind "${COMP_WORDS[at]}")"
            [[ -n "$kind" ]] && COMPREPLY=( $(compgen -W "$(_unfold_names "$exe" "$kind")" -- "$value") )
        fi
        return 0
    fi

    if (( COMP_CWORD == 1 )); then
        COMPREPLY=( $(compgen -W "__COMMANDS__ --help --version" -- "$cur") )
        return 0
    fi

    case "$prev" in
        --config)
            compopt -o filenames 2>/dev/null
            COMPREPLY=( $(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -- "$cur") )
            return 0 ;;
        --out|--resume|--checkpoints)
            compopt -o filenames 2>/dev/null
            COMPREPLY=( $(compgen -d -- "$cur") )
            return 0 ;;
        --experiment)
            COMPREPLY=( $(compgen -W "$(_unfold_names "$exe" experiment)" -- "$cur") )
            return 0 ;;
        --options)
            COMPREPLY=( $(compgen -W "$(_unfold_names "$exe" component)" -- "$cur") )
            return 0 ;;
        --metric)
            COMPREPLY=( $(compgen -W "$(_unfold_names "$exe" metric)" -- "$cur") )
            return 0 ;;
        --only)
            COMPREPLY=( $(compgen -W "$(_unfold_names "$exe" solver)" -- "$cur") )
            return 0 ;;
        --set)
            if [[ "$cur" == *=* ]]; then  # '=' removed from COMP_WORDBREAKS: KEY=VALUE is one word
                kind="$(_unfold_value_kind "${cur%%=*}")"
                [[ -n "$kind" ]] && COMPREPLY=( $(compgen -P "${cur%%=*}=" -W "$(_unfold_names "$exe" "$kind")" -- "${cur#*=}") )
            else
                compopt -o nospace 2>/dev/null
                COMPREPLY=( $(compgen -S "=" -W "$(_unfold_names "$exe" key)" -- "$cur") )
            fi
            return 0 ;;
    esac

    case "$cmd" in
        completion)
            (( COMP_CWORD == 2 )) && COMPREPLY=( $(compgen -W "bash zsh --help" -- "$cur") )
            return 0 ;;
        examples)
            if (( COMP_CWORD == 2 )); then
                COMPREPLY=( $(compgen -W "list copy --help" -- "$cur") )
            elif [[ "${COMP_WORDS[2]}" == "copy" ]]; then
                if [[ "$cur" == -* ]]; then
                    COMPREPLY=( $(compgen -W "--force --help" -- "$cur") )
                elif (( COMP_CWORD == 3 )); then
                    COMPREPLY=( $(compgen -W "$(_unfold_names "$exe" experiment)" -- "$cur") )
                else
                    compopt -o filenames 2>/dev/null
                    COMPREPLY=( $(compgen -f -- "$cur") )
                fi
            fi
            return 0 ;;
__OPTION_CASES__
    esac
    return 0
}

complete -F _unfold unfold
"""

_ZSH = r"""#compdef unfold
# zsh completion for unfold (du-framework __VERSION__)
# Install: add this line to ~/.zshrc, after `autoload -Uz compinit && compinit`:
#     eval "$(unfold completion zsh)"
# or save it as _unfold in a folder of $fpath: unfold completion zsh > ~/.zfunc/_unfold
# Names (problems, solvers, schedules, experiments, --set keys) come from `unfold __complete KIND`
# when you press TAB, so newly installed plugins are completed without regenerating this script.

_unfold_names() {
    command "$1" __complete "$2" 2>/dev/null
}

_unfold() {
    local exe="${words[1]}" cur="${words[CURRENT]}" prev="${words[CURRENT-1]}" cmd="" kind key
    local -a names
    (( CURRENT > 2 )) && cmd="${words[2]}"

    if (( CURRENT == 2 )); then
        names=(__COMMANDS__ --help --version)
        compadd -a names
        return
    fi

    case "$prev" in
        --config)
            _files -g '*.toml'
            return ;;
        --out|--resume|--checkpoints)
            _directories
            return ;;
        --experiment)
            names=(${(f)"$(_unfold_names "$exe" experiment)"})
            compadd -a names
            return ;;
        --options)
            names=(${(f)"$(_unfold_names "$exe" component)"})
            compadd -a names
            return ;;
        --metric)
            names=(${(f)"$(_unfold_names "$exe" metric)"})
            compadd -a names
            return ;;
        --only)
            names=(${(f)"$(_unfold_names "$exe" solver)"})
            compadd -a names
            return ;;
        --set)
            if [[ "$cur" == *=* ]]; then
                key="${cur%%=*}"
                case "$key" in
                    problem.name) kind=problem ;;
                    train.schedule) kind=schedule ;;
                    solvers.*.name) kind=solver ;;
                    *) return ;;
                esac
                compset -P '*='
                names=(${(f)"$(_unfold_names "$exe" "$kind")"})
                compadd -a names
            else
                names=(${(f)"$(_unfold_names "$exe" key)"})
                compadd -S '=' -a names
            fi
            return ;;
    esac

    case "$cmd" in
        completion)
            (( CURRENT == 3 )) && compadd bash zsh --help
            return ;;
        examples)
            if (( CURRENT == 3 )); then
                compadd list copy --help
            elif [[ "${words[3]}" == copy ]]; then
                if [[ "$cur" == -* ]]; then
                    compadd -- --force --help
                elif (( CURRENT == 4 )); then
                    names=(${(f)"$(_unfold_names "$exe" experiment)"})
                    compadd -a names
                else
                    _files
                fi
            fi
            return ;;
__OPTION_CASES__
    esac
}

if [[ "${zsh_eval_context[-1]}" == loadautofunc ]]; then
    _unfold "$@"
else
    compdef _unfold unfold
fi
"""


def completion_script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` (``bash`` or ``zsh``) of the commands of ``parser``
    (:func:`du_framework.cli.build_parser`)."""
    commands = _commands(parser)
    cases = []
    for name, options in commands.items():
        if name in ("completion", "examples"):
            continue
        words = " ".join(options)
        if shell == "bash":
            cases.append(f'        {name})\n            COMPREPLY=( $(compgen -W "{words}" -- "$cur") )\n'
                         f'            return 0 ;;')
        else:
            cases.append(f"        {name})\n            compadd -- {words}\n            return ;;")
    template = {"bash": _BASH, "zsh": _ZSH}[shell]
    return (template.replace("__VERSION__", __version__).replace("__COMMANDS__", " ".join(commands))
            .replace("__OPTION_CASES__", "\n".join(cases)))


def cmd_completion(args) -> int:
    print(completion_script(args.shell, args.parser), end="")  # args.parser: set by build_parser
    return 0
