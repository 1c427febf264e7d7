"""The example configurations validate against the installed plugins and run (shortened)."""

from pathlib import Path

import numpy as np
import pytest

from du_framework.compare import run_comparison
from du_framework.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.toml"))

SHORTEN = {
    "sparse_recovery": ["problem.n=40", "problem.m=20"],
    "linear_system": ["problem.n=16"],
    "ridge_theory": ["problem.n=10", "problem.m=20"],
}


def test_the_three_families_have_an_example():
    assert {path.stem for path in EXAMPLES} == set(SHORTEN)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path):
    config = load_config(path, SHORTEN[path.stem] + [
        "train.depth=4", "train.steps_per_stage=3", "train.batch_size=8", "evaluation.batches=1",
        "evaluation.batch_size=16"])
    comparison = run_comparison(config, progress=False)
    assert list(comparison.results) == [s.label for s in config.solvers]
    for result in comparison.results.values():
        assert result.mse.shape == (4,) and np.all(np.isfinite(result.mse))
