"""``unfold generalise``: a run's trained solvers deeper than trained and on other problem settings.

The numbers are checked against the DU-GD recursion recomputed in float64 NumPy from the learned steps the
run reports, the matrix drawn from the problem's seed and the evaluation instances' observations.
"""

import importlib.metadata
import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from du_framework.cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs"
pytestmark = pytest.mark.skipif(
    "du-gd-ridge" not in {ep.name for ep in importlib.metadata.entry_points(group="du_framework")},
    reason="the generalisation tests train DU-GD: plugin du-gd-ridge is not installed")

# The sizes of docs/generalisation.md's example, so that the two share compiled programs in one process.
N, M, LAM, DEPTH, BATCH, BATCHES, EVAL_SEED = 6, 12, 3.0, 4, 100, 1, 2026


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small comparison: DU-GD with period 2 and DU-GD with one step per iteration."""
    out = tmp_path_factory.mktemp("generalise") / "run"
    code = main(["compare", "--only", "dugd,every", "--out", str(out), "--no-progress", "--no-plots",
                 "--set", f"problem.n={N}", "--set", f"problem.m={M}", "--set", f"problem.lam={LAM}",
                 "--set", f"train.depth={DEPTH}", "--set", "train.steps_per_stage=5",
                 "--set", f"evaluation.batch_size={BATCH}", "--set", f"evaluation.batches={BATCHES}",
                 "--set", f"evaluation.seed={EVAL_SEED}", "--set", "solvers.dugd.period=2",
                 "--set", "solvers.every.name=dugd", "--set", "solvers.every.period=0"])
    assert code == 0
    return out


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def dugd_mse(steps: np.ndarray, depth: int, seed: int, lam: float = LAM) -> np.ndarray:
    """MSE after each iteration of ``x <- x - eta_(t mod T) (A^T A x + lam x - A^T y)`` from 0, in float64."""
    from du_framework.workbench.training import evaluation_key
    from du_gd_ridge import RidgeProblem

    A = np.random.default_rng(seed).standard_normal((M, N))
    sampler = RidgeProblem.from_options(RidgeProblem.Options(n=N, m=M, lam=lam, seed=seed))
    keys = jax.random.split(evaluation_key(EVAL_SEED), BATCHES)
    y = np.concatenate([np.asarray(sampler.sample(key, BATCH)["y"], np.float64) for key in keys])
    H = A.T @ A + lam * np.eye(N)
    b = y @ A
    target = np.linalg.solve(H, b.T).T
    x, curve = np.zeros_like(target), []
    for t in range(depth):
        x = x - steps[t % len(steps)] * (x @ H - b)
        curve.append(np.mean(np.sum((target - x) ** 2, axis=1)))
    return np.array(curve)


def results(folder: Path) -> dict:
    data = json.loads((folder / "generalise.json").read_text())
    return {(r["setting"], r["solver"], r["depth"]): r for r in data["results"]}


def test_a_periodic_dugd_extended_to_twice_its_depth_matches_a_float64_recursion(run, tmp_path, capsys):
    out = tmp_path / "deeper"
    assert main(["generalise", str(run), "--depth", str(2 * DEPTH), "--only", "dugd", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"depth {DEPTH} (trained)" in printed and f"depth {2 * DEPTH}" in printed
    found = results(out)
    eta = np.asarray(json.loads((run / "results.json").read_text())["solvers"]["dugd"]["params"]["eta"], np.float64)
    assert eta.shape == (2,)
    expected = dugd_mse(eta, 2 * DEPTH, seed=0)
    np.testing.assert_allclose(found[("trained", "dugd", 2 * DEPTH)]["curves"]["mse"], expected, rtol=2e-3)
    # The trained depth repeats the run's own evaluation, number for number.
    own = json.loads((run / "results.json").read_text())["solvers"]
    np.testing.assert_allclose(found[("trained", "dugd", DEPTH)]["curves"]["mse"], own["dugd"]["metrics"]["mse"],
                               rtol=1e-6)
    assert sorted(p.name for p in out.iterdir()) == ["generalise.csv", "generalise.json", "mse-vs-depth.png",
                                                     "table.md"]
    assert (out / "mse-vs-depth.png").read_bytes().startswith(b"\x89PNG")
    rows = (out / "generalise.csv").read_text().splitlines()
    assert rows[0] == "setting,solver,depth,iteration,mse,nmse_db" and len(rows) == 1 + DEPTH + 2 * DEPTH


def test_a_per_iteration_solver_is_refused_deeper_with_exit_2_and_nothing_written(run, tmp_path, capsys):
    before = files_of(run)
    assert main(["generalise", str(run), "--depth", str(DEPTH + 1)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "every (dugd) cannot run at depth 5" in error
    assert "one value per iteration" in error and "'eta'" in error
    assert files_of(run) == before and not any(p.name.startswith("generalise") for p in run.iterdir())
    out = tmp_path / "refused"
    assert main(["generalise", str(run), "--depth", "8", "--out", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_per_iteration_solver_runs_at_a_shallower_depth_on_its_first_steps(run, tmp_path):
    out = tmp_path / "shallower"
    assert main(["generalise", str(run), "--depth", "2", "--only", "every", "--out", str(out)]) == 0
    eta = np.asarray(json.loads((run / "results.json").read_text())["solvers"]["every"]["params"]["eta"])
    assert eta.shape == (DEPTH,)
    np.testing.assert_allclose(results(out)[("trained", "every", 2)]["curves"]["mse"], dugd_mse(eta, 2, seed=0),
                               rtol=2e-3)


def test_another_problem_option_changes_the_numbers_and_the_learned_steps_are_kept(run, tmp_path, capsys):
    out = tmp_path / "other"
    assert main(["generalise", str(run), "--only", "dugd", "--set", "problem.seed=5", "--set", "problem.lam=1",
                 "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert re.search(r"problem\.seed=5\s+dugd", table) and re.search(r"problem\.lam=1\s+dugd", table)
    found = results(out)
    trained = found[("trained", "dugd", DEPTH)]["final"]["mse"]
    assert found[("problem.seed=5", "dugd", DEPTH)]["final"]["mse"] != pytest.approx(trained, rel=1e-3)
    assert found[("problem.lam=1", "dugd", DEPTH)]["final"]["mse"] != pytest.approx(trained, rel=1e-3)
    eta = np.asarray(json.loads((run / "results.json").read_text())["solvers"]["dugd"]["params"]["eta"], np.float64)
    np.testing.assert_allclose(found[("problem.seed=5", "dugd", DEPTH)]["curves"]["mse"],
                               dugd_mse(eta, DEPTH, seed=5), rtol=2e-3)
    np.testing.assert_allclose(found[("problem.lam=1", "dugd", DEPTH)]["curves"]["mse"],
                               dugd_mse(eta, DEPTH, seed=0, lam=1.0), rtol=2e-3)


@pytest.mark.parametrize("args, message", [
    (["--depth", "0"], "give depths as integers >= 1"),
    (["--set", "train.depth=8"], "the solvers and their training are the run's"),
    (["--metric", "ber"], "unknown metric 'ber'"),
    (["--set", "problem.sed=3"], "sed"),
    (["--figures", "gif"], "--figures 'gif'"),
])
def test_bad_options_are_refused_with_exit_2_and_nothing_written(run, capsys, args, message):
    before = files_of(run)
    assert main(["generalise", str(run), *args]) == 2
    assert message in capsys.readouterr().err
    assert files_of(run) == before


def test_out_refuses_the_run_folder_and_an_existing_folder(run, tmp_path, capsys):
    assert main(["generalise", str(run), "--out", str(run)]) == 2
    assert "never written over" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep")
    assert main(["generalise", str(run), "--out", str(tmp_path / "taken")]) == 2
    assert (tmp_path / "taken" / "x").read_text() == "keep"


def test_generalisation_page_examples_execute(tmp_path, monkeypatch):
    blocks = re.findall(r"```python run\n(.*?)```", (DOCS / "generalisation.md").read_text(), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for number, code in enumerate(blocks, 1):
        exec(compile(code, f"docs/generalisation.md (block {number})", "exec"), namespace)
    assert "generalisation.md" in (DOCS.parent / "mkdocs.yml").read_text()


def test_the_figure_has_a_panel_per_setting_the_deepest_curves_and_the_trained_depth_marked():
    from du_framework import MSE
    from du_framework.workbench.figures import generalisation_figure
    from du_framework.workbench.generalise import Generalisation, Setting

    curves = {(setting, label, depth): {"mse": np.geomspace(1.0, scale * 10.0 ** -depth, depth)}
              for setting in ("trained", "problem.seed=5") for label, scale in (("dugd", 1.0), ("gd", 3.0))
              for depth in (4, 8)}
    result = Generalisation(run=Path("run"), problem="ridge", trained_depth=4, depths=[4, 8],
                            settings=[Setting("trained"), Setting("problem.seed=5", ("problem.seed=5",))],
                            solvers=[("dugd", True), ("gd", False)], metrics={"mse": MSE}, primary="mse",
                            evaluation={}, described="", curves=curves, seeds={"dugd": [1], "gd": []})
    figure = generalisation_figure(result, title=False)
    assert [ax.get_title() for ax in figure.axes] == ["trained", "problem.seed=5"]
    for ax in figure.axes:
        lines = {line.get_label(): line for line in ax.get_lines()}
        np.testing.assert_allclose(lines["dugd"].get_ydata(), curves[("trained", "dugd", 8)]["mse"])
        assert list(lines["trained depth 4"].get_xdata()) == [4, 4]
        assert ax.get_yscale() == "log" and ax.get_xlabel() == "depth (iterations)"
