"""Shell completion (unfold completion bash|zsh, the hidden unfold __complete KIND) and the examples in --help."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from du_framework.cli import build_parser, completion_script, main

from core_plugin import core_plugin  # noqa: F401 - the fixture
from plugin_factory import make_distribution

TESTS = Path(__file__).resolve().parent


def names(kind, capsys):
    assert main(["__complete", kind]) == 0
    return capsys.readouterr().out.split()


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_completion_scripts_are_valid_shell(shell, tmp_path, capsys):
    if not shutil.which(shell):
        pytest.skip(f"{shell} is not installed")
    assert main(["completion", shell]) == 0
    script = tmp_path / f"unfold.{shell}"
    script.write_text(capsys.readouterr().out)
    done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = script.read_text()
    for command in ("list", "compare", "train", "examples", "completion", "--experiment", "--set", "--resume"):
        assert command in text
    assert "__complete" in text and " docs " not in text  # names asked at completion time; the hidden stays hidden


def test_complete_prints_the_registered_names_and_keys(core_plugin, capsys):
    assert names("problem", capsys) == ["conformance-least-squares", "diag-quadratic"]
    assert names("solver", capsys) == ["constant-gd", "learned-gd"]
    assert "incremental" in names("schedule", capsys)
    assert names("experiment", capsys) == ["small"]
    assert {"max_error", "mse"} <= set(names("metric", capsys))
    keys = names("key", capsys)
    for key in ("train.depth", "train.schedule", "train.lr_schedule", "evaluation.batches", "problem.name",
                "problem.n", "problem.kappa", "problem.lam"):
        assert key in keys
    assert all(key.split(".")[0] in ("train", "evaluation", "problem") for key in keys)
    assert names("component", capsys)[:2] == ["train", "evaluation"]


def test_complete_is_hidden_from_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    printed = capsys.readouterr().out
    assert "completion" in printed and "examples" in printed
    assert "__complete" not in printed and "docs" not in printed.split("options:")[0].split("COMMAND", 2)[-1]


@pytest.mark.parametrize("command", ["list", "compare", "train", "examples", "completion"])
def test_every_subcommand_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    assert "Example" in printed and f"unfold {command}" in printed.split("Example", 1)[1]


@pytest.fixture
def unfold_on_path(tmp_path):
    """An ``unfold`` on PATH whose only plugin is the core tests' plugin, installed as a distribution."""
    site = make_distribution(tmp_path / "site", "du-core-tests", "core-tests", "du_core_tests",
                             "from core_plugin import register_experiments, register_problems, register_solvers\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "unfold"
    shim.write_text(f"#!{sys.executable}\nimport sys\nfrom du_framework.cli import entry\nsys.exit(entry())\n")
    shim.chmod(0o755)
    return {**os.environ, "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join([str(site), str(TESTS)]), "DU_PLUGINS": "core-tests"}


def complete_in_bash(env, *words):
    """Drive the bash completion function as bash does on TAB: COMP_WORDS, COMP_CWORD, then _unfold."""
    script = completion_script("bash", build_parser())
    quoted = " ".join("'" + word.replace("'", "'\\''") + "'" for word in words)
    program = (f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; COMP_LINE=\"${{COMP_WORDS[*]}}\"\n"
               f"_unfold\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    done = subprocess.run(["bash", "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.skipif(not shutil.which("bash"), reason="bash is not installed")
def test_bash_completes_commands_options_names_and_keys(unfold_on_path):
    env = unfold_on_path
    assert complete_in_bash(env, "unfold", "com") == ["compare", "completion"]
    assert complete_in_bash(env, "unfold", "compare", "--exp") == ["--experiment"]
    assert complete_in_bash(env, "unfold", "compare", "--experiment", "") == ["small"]
    assert complete_in_bash(env, "unfold", "list", "--options", "diag") == ["diag-quadratic"]
    assert complete_in_bash(env, "unfold", "train", "--set", "problem.ka") == ["problem.kappa="]
    # bash splits --set problem.name=di at '=' (COMP_WORDBREAKS)
    assert complete_in_bash(env, "unfold", "compare", "--set", "problem.name", "=", "di") == ["diag-quadratic"]
    assert complete_in_bash(env, "unfold", "compare", "--set", "train.schedule", "=") == sorted(
        complete_in_bash(env, "unfold", "compare", "--set", "train.schedule", "="))
    assert "incremental" in complete_in_bash(env, "unfold", "compare", "--set", "train.schedule", "=")
    assert complete_in_bash(env, "unfold", "examples", "copy", "") == ["small"]
    assert complete_in_bash(env, "unfold", "completion", "") == ["bash", "zsh", "--help"]


@pytest.mark.skipif(not shutil.which("bash"), reason="bash is not installed")
def test_a_new_plugin_is_completed_without_regenerating_the_script(unfold_on_path):
    env = dict(unfold_on_path, DU_PLUGINS="")
    assert complete_in_bash(env, "unfold", "compare", "--experiment", "") == []
    env["DU_PLUGINS"] = "core-tests"
    assert complete_in_bash(env, "unfold", "compare", "--experiment", "") == ["small"]


def test_examples_lists_and_copies_the_installed_experiments(core_plugin, tmp_path, capsys, monkeypatch):
    from core_plugin import SMALL_TOML

    assert main(["examples"]) == 0
    printed = capsys.readouterr().out
    assert "small" in printed and "[core-tests]" in printed and "a small least-squares problem" in printed
    monkeypatch.chdir(tmp_path)
    assert main(["examples", "copy", "small"]) == 0
    assert (tmp_path / "small.toml").read_text().strip() == SMALL_TOML.strip()
    capsys.readouterr()
    assert main(["examples", "copy", "small"]) == 2  # refuses to overwrite
    error = capsys.readouterr().err
    assert "exists" in error and "--force" in error
    (tmp_path / "small.toml").write_text("changed")
    assert main(["examples", "copy", "small", "--force"]) == 0
    assert (tmp_path / "small.toml").read_text().strip() == SMALL_TOML.strip()
    (tmp_path / "into").mkdir()
    assert main(["examples", "copy", "small", "into"]) == 0 and (tmp_path / "into" / "small.toml").is_file()
    assert main(["examples", "copy", "smal"]) == 2
    assert "did you mean 'small'" in capsys.readouterr().err
    assert main(["compare", "--config", "small.toml", "--set", "train.depth=2", "--set", "evaluation.batches=1",
                 "--out", "run", "--no-progress", "--no-plots"]) == 0
