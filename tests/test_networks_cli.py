"""A network-holding solver through the workbench and the command line: list, compare, train, plot, load."""

import json
import re

import numpy as np
import pytest
from network_solvers import GDNet

from core_plugin import core_plugin  # noqa: F401 - the fixture
from du_framework import hookimpl
from du_framework.cli import main
from du_framework.registry import plugin_registered
from du_framework.workbench.loading import load_run

CONFIG = """
[problem]
name = "conformance-least-squares"
n = 6
m = 12

[train]
depth = 3
steps_per_stage = 3
batch_size = 8
chunk_size = 1

[evaluation]
batch_size = 20
batches = 1

[[solvers]]
name = "gd-net"
label = "net"
networks = "per-iteration"
width = 4
"""
PER_COPY = (6 * 4 + 4) + (4 * 6 + 6)  # the MLP 6 -> 4 -> 6: two Linear layers


class NetworkPlugin:
    @hookimpl
    def register_solvers(self, register):
        register(GDNet)


@pytest.fixture
def network_plugin(core_plugin):  # noqa: F811 - the fixture
    with plugin_registered(NetworkPlugin(), "networks"):
        yield


def test_list_options_describes_each_network_with_its_sharing_size_and_rate(network_plugin, capsys):
    assert main(["list", "--options", "gd-net"]) == 0
    printed = capsys.readouterr().out
    # built with its default options (width 16, one shared MLP) on the installed problem it fits, n = 8
    per_copy = (8 * 16 + 16) + (16 * 8 + 8)
    assert "learns (default options, problem 'conformance-least-squares', depth 50):" in printed
    assert re.search(rf"^  net +network: MLP 1x16, shared by every iteration, {per_copy:,} parameters; "
                     rf"rate option net_lr$", printed, re.M), printed
    assert re.search(r"^  eta +50 values, > 0 \(exp\): step eta_t; rate option lr$", printed, re.M), printed
    assert f"{50 + per_copy:,} learned numbers in all" in printed
    assert main(["list", "--options", "gd-net", "--json"]) == 0
    learns = json.loads(capsys.readouterr().out)[0]["learns"]
    assert learns["parameters"] == 50 + per_copy
    assert [(part["name"], part["kind"], part["lr"]) for part in learns["parts"]] == [
        ("eta", "parameter", "lr"), ("net", "network", "net_lr")]


def test_compare_reports_parameter_counts_and_networks_and_plots_without_the_weights(network_plugin, tmp_path):
    config = tmp_path / "net.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    assert main(["compare", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    entry = json.loads((out / "results.json").read_text())["solvers"]["net"]
    assert entry["parameter_count"] == 3 + 3 * PER_COPY
    assert entry["networks"] == {"net": f"MLP 1x4, 3 copies (iteration k uses copy k mod 3), {PER_COPY:,} "
                                        f"parameters each, {3 * PER_COPY:,} in all"}
    assert set(entry["params"]) == {"eta"}  # the weights are in the checkpoint, not in the reported values
    assert (out / "params.png").is_file()
    run = load_run(out)
    assert run.solvers["net"].parameter_count == 3 + 3 * PER_COPY and run.solvers["net"].networks == entry["networks"]

    # a run of `unfold train`: its figure draws the stored eta_t, not the network's weights
    trained = tmp_path / "trained"
    assert main(["train", "--config", str(config), "--out", str(trained), "--no-progress"]) == 0
    assert set(load_run(trained).solvers["net"].stored_params) == {"eta"}
    assert main(["plot", str(trained), "--what", "params", "--out", str(tmp_path / "params.png")]) == 0
    assert (tmp_path / "params.png").is_file()
    # and the trained weights reload bitwise for another comparison
    again = tmp_path / "again"
    assert main(["compare", "--config", str(config), "--checkpoints", str(trained / "checkpoints"), "--out",
                 str(again), "--no-progress", "--no-plots"]) == 0
    np.testing.assert_array_equal(json.loads((again / "results.json").read_text())["solvers"]["net"]["metrics"]["mse"],
                                  entry["metrics"]["mse"])
