"""``unfold examples``: the experiments the installed plugins ship, listed and copied out as TOML files."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, nearest

from ._common import load_registry


def _experiment(registry, name: str):
    names = sorted(registry.entries["experiment"])
    if name not in names:
        hint = nearest(name, names)
        raise ConfigError(f"examples copy: no installed experiment is called {name!r}"
                          + (f" (did you mean {hint!r}?)" if hint else "")
                          + f"; installed: {', '.join(names) or '(none)'}")
    return registry.experiment(name)


def cmd_examples(args) -> int:
    if getattr(args, "examples_command", None) == "copy":
        return _copy(load_registry(), args)
    from .catalogue import cached

    return cached("examples", _listing)


def _listing() -> int:
    registry = load_registry()
    names = sorted(registry.entries["experiment"])
    if not names:
        print("no installed plugin ships an experiment (see unfold list)")
        return 0
    width = max(len(n) for n in names)
    plugin_width = max(len(registry.plugin_of("experiment", n)) for n in names) + 2
    for name in names:
        experiment = registry.experiment(name)
        plugin = f"[{registry.plugin_of('experiment', name)}]".ljust(plugin_width)
        default = "  (default)" if experiment.default else ""
        print(f"{name.ljust(width)}  {plugin}  {experiment.description}{default}")
    print()
    print("Run one with: unfold compare --experiment NAME; "
          "copy it to edit: unfold examples copy NAME [DEST]")
    return 0


def _copy(registry, args) -> int:
    from ..io.atomic import atomic_write

    experiment = _experiment(registry, args.name)
    dest = Path(args.dest) if args.dest else Path(f"{experiment.name}.toml")
    if dest.is_dir():
        dest = dest / f"{experiment.name}.toml"
    if (dest.exists() or dest.is_symlink()) and not args.force:
        raise ConfigError(f"examples copy: {str(dest)!r} exists; choose another DEST or add --force "
                          f"to overwrite it")
    if dest.is_dir():
        raise ConfigError(f"examples copy: {str(dest)!r} is a folder")
    text = experiment.config if experiment.config.endswith("\n") else experiment.config + "\n"
    with atomic_write(dest) as handle:
        handle.write(text)
    print(f"wrote {dest} (experiment {experiment.name!r} of plugin "
          f"{registry.plugin_of('experiment', experiment.name)}); run it with: unfold compare --config {dest}")
    return 0
