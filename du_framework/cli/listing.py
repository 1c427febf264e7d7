"""``unfold list`` (components, experiments, options) and ``unfold docs`` (the generated option tables)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ..errors import ConfigError, nearest

from ._common import DOCS_COMMAND, KINDS, SETTINGS, load_registry


def _fits(registry, solver_cls) -> list[str]:  # capabilities are classes a problem inherits
    return sorted(name for name in registry.entries["problem"]
                  if all(issubclass(registry.problem(name), c) for c in solver_cls.capabilities()))


def _component(registry, kind: str, name: str):
    return registry.get(kind, name).cls


def cmd_list(args) -> int:
    from .catalogue import cached

    return cached(f"list options={args.options!r} json={bool(args.json)}", lambda: _list(args))


def _list(args) -> int:
    from ..capabilities import capability_name

    registry = load_registry()
    if args.options:
        return _print_options(registry, args.options, as_json=args.json)
    experiments = {name: registry.experiment(name) for name in sorted(registry.entries["experiment"])}
    if args.json:
        def described(kind, extra=lambda cls: {}):
            return {name: {"plugin": registry.plugin_of(kind, name),
                           "description": _component(registry, kind, name).description,
                           **extra(_component(registry, kind, name))} for name in sorted(registry.entries[kind])}

        payload = {
            "problems": described("problem", lambda cls: {"metrics": [m.name for m in cls.metrics],
                                                          "primary_metric": cls.primary()}),
            "solvers": described("solver", lambda cls: {"requires": capability_name(cls.capabilities()),
                                                        "fits": _fits(registry, cls)}),
            "schedules": described("schedule"),
            "experiments": {name: {"plugin": registry.plugin_of("experiment", name),
                                   "description": e.description, "default": e.default}
                            for name, e in experiments.items()},
            "observers": described("observer"),
            "failed_plugins": dict(registry.failures),
        }
        print(json.dumps(payload, indent=2))
        return 0

    def section(title: str, kind: str, describe, extra=lambda name: "") -> None:
        print(f"{title}:")
        names = sorted(registry.entries[kind])
        if not names:
            print("  (none)")
        width = max((len(n) for n in names), default=0)
        plugin_width = max((len(registry.plugin_of(kind, n)) for n in names), default=0) + 2
        for name in names:
            plugin = f"[{registry.plugin_of(kind, name)}]".ljust(plugin_width)
            print(f"  {name.ljust(width)}  {plugin}  {describe(name)}{extra(name)}")
        print()

    def description(kind):
        return lambda name: _component(registry, kind, name).description

    solver_width = max((len(n) for n in registry.entries["solver"]), default=0)
    section("Problems", "problem", description("problem"))
    section("Solvers", "solver", description("solver"),
            lambda name: f"\n  {' ' * solver_width}  requires: "
                         f"{capability_name(registry.solver(name).capabilities())}; fits: "
                         f"{', '.join(_fits(registry, registry.solver(name))) or '(no installed problem)'}")
    section("Schedules", "schedule", description("schedule"))
    section("Experiments (unfold compare --experiment NAME)", "experiment",
            lambda name: experiments[name].description + ("  (default)" if experiments[name].default else ""))
    section("Observers (unfold compare --observe NAME)", "observer", description("observer"))
    if registry.failures:
        print("Plugins that failed to load (skipped):")
        for name, error in registry.failures.items():
            print(f"  {name}: {error}")
    return 0


def _settings_class(name: str):
    from ..engine.settings import EvaluationSettings, TrainSettings

    return {"train": TrainSettings, "evaluation": EvaluationSettings}[name]


def _where(kind: str, name: str) -> str:
    """Where a component's options are set in a configuration."""
    return {
        "problem": f"set in [problem] beside name = \"{name}\", or with --set problem.KEY=VALUE",
        "solver": f"set in a [[solvers]] table beside name = \"{name}\", or with --set solvers.LABEL.KEY=VALUE",
        "schedule": f"set in [train] beside schedule = \"{name}\", or with --set train.KEY=VALUE",
        "train": "the [train] table (the schedule's own options are set there too), or --set train.KEY=VALUE",
        "evaluation": "the [evaluation] table (fresh instances shared by every solver), "
                      "or --set evaluation.KEY=VALUE",
    }[kind]


def _print_options(registry, name: str, *, as_json: bool = False) -> int:
    from ..options import option_rows
    from ..workbench.text import format_options

    found = [(kind, _settings_class(kind)) for kind in SETTINGS if name == kind]
    found += [(kind, _component(registry, kind, name)) for kind in KINDS if name in registry.entries[kind]]
    if not found:
        known = list(SETTINGS) + sorted({n for kind in KINDS for n in registry.entries[kind]})
        hint = nearest(name, known)
        raise ConfigError(f"--options: no problem, solver or schedule is called {name!r}"
                          + (f" (did you mean {hint!r}?)" if hint else "") + f"; known: {', '.join(known)}")
    learning = {kind: _learning(registry, name) for kind, _ in found if kind == "solver"}
    if as_json:
        print(json.dumps([{"kind": kind, "name": name, "options": option_rows(getattr(cls, "Options", cls)),
                           **({"learns": learning[kind]} if kind in learning else {})}
                          for kind, cls in found], indent=2))
        return 0
    for index, (kind, cls) in enumerate(found):
        if kind in SETTINGS:
            print(f"{kind} settings: {_where(kind, name)}")
        else:
            print(f"{kind} {name} [{registry.plugin_of(kind, name)}]: {cls.description}")
            print(_where(kind, name))
        print()
        print(format_options(getattr(cls, "Options", cls)))
        if kind in learning:
            print()
            print(_format_learning(learning[kind]))
        if index < len(found) - 1:
            print()
    return 0


def _learning(registry, name: str) -> dict:
    from ..settings import TrainSettings
    from ..workbench.build import describe_learning

    return describe_learning(name, _fits(registry, registry.solver(name)), TrainSettings().depth, registry)


def _format_learning(learning: dict) -> str:
    """The "learns" block of ``unfold list --options SOLVER``: each learned parameter and network."""
    if "unavailable" in learning:
        return f"learns: not shown ({learning['unavailable']})"
    if not learning["parts"]:
        return "learns: nothing (a classical method)"
    lines = [f"learns (default options, problem {learning['problem']!r}, depth {learning['depth']}):"]
    width = max(len(part["name"]) for part in learning["parts"])
    for part in learning["parts"]:
        if part["kind"] == "network":
            what = f"network: {part['summary']}"
        else:
            shape = "x".join(map(str, part["shape"])) or "1"
            what = f"{shape} values, {part['constraint']}" + (f": {part['doc']}" if part["doc"] else "")
        lines.append(f"  {part['name'].ljust(width)}  {what}; rate option {part['lr']}")
    lines.append(f"  {learning['parameters']:,} learned numbers in all")
    return "\n".join(lines)


def _facts(registry, kind: str, name: str) -> str:
    """One Markdown line about a component: its plugin and what it declares besides options."""
    from ..capabilities import capability_name

    cls = _component(registry, kind, name)
    facts = [f"Plugin `{registry.plugin_of(kind, name)}`"]
    if kind == "problem":
        facts.append("metrics " + ", ".join(f"`{m.name}`" + (" (primary)" if m.name == cls.primary() else "")
                                            for m in cls.metrics))
    elif kind == "solver":
        facts.append(f"requires `{capability_name(cls.capabilities())}`")
    description = cls.description.rstrip(".")
    return (f"{description}.\n" if description else "") + "; ".join(facts) + "."


def _component_tables(registry, kind: str) -> str:
    from ..workbench.text import format_options

    parts = [f"#### `{name}`\n\n{_facts(registry, kind, name)}\n\n"
             + format_options(_component(registry, kind, name).Options, markdown=True)
             for name in sorted(registry.entries[kind])]
    return "\n\n".join(parts) or "(none installed)"


def render_option_tables(text: str, registry=None) -> str:
    """``text`` with every block between ``<!-- options:WHAT -->`` and ``<!-- /options -->`` regenerated.

    ``WHAT`` is ``train`` or ``evaluation`` (one table of settings) or
    ``problems``, ``solvers`` or ``schedules`` (a heading and a table for every
    installed component of that kind).

    Raises:
        ConfigError: an unknown ``WHAT``, or a plugin failed to load (its
            components would be missing from the tables).
    """
    from ..workbench.text import format_options

    registry = registry or load_registry()
    if registry.failures:
        raise ConfigError("cannot generate the option tables while plugins fail to load: "
                          + "; ".join(f"{name}: {error}" for name, error in registry.failures.items()))

    def generate(match: re.Match) -> str:
        what = match.group(2)
        if what in SETTINGS:
            body = format_options(_settings_class(what), markdown=True)
        elif what.endswith("s") and what[:-1] in KINDS:
            body = _component_tables(registry, what[:-1])
        else:
            raise ConfigError(f"unknown option table <!-- options:{what} -->; known: train, evaluation, "
                              f"problems, solvers, schedules")
        return f"{match.group(1)}{body}\n{match.group(3)}"

    return re.sub(r"(<!-- options:(\S+) -->\n)(?:.*?\n)??(<!-- /options -->)", generate, text, flags=re.S)


def cmd_docs(args) -> int:
    path = Path(args.file)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read {str(path)!r}: {error.strerror or error}") from error
    updated = render_option_tables(text)
    if updated == text:
        print(f"{path}: the option tables are up to date")
        return 0
    if args.check:
        print(f"{path}: the option tables are out of date; regenerate them with: {DOCS_COMMAND}", file=sys.stderr)
        return 1
    from ..io.atomic import atomic_write

    with atomic_write(path) as handle:
        handle.write(updated)
    print(f"{path}: option tables regenerated")
    return 0
