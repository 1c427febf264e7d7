"""Checkpoints: round trip, refusal of other configurations, atomic writes, no pickle."""

import json

import numpy as np
import pytest

from du_framework import CheckpointError
from du_framework.atomic import atomic_write
from du_framework.checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from du_gd_ridge import DUGD, RidgeProblem


@pytest.fixture(scope="module")
def problem():
    return RidgeProblem.from_options(RidgeProblem.Options(n=4, m=8, lam=1.0))


def make(problem, depth=6, **options):
    # The step parametrisation, so that tests can read and set eta directly.
    options.setdefault("parametrization", "step")
    return DUGD(DUGD.Options(**options), problem=problem, depth=depth)


def test_round_trip_restores_every_parameter(problem, tmp_path):
    solver = make(problem, learn_lambda=True)
    solver.eta[...] = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    solver.xi[...] = np.arange(6, dtype=np.float32)
    save_checkpoint(tmp_path / "a.npz", solver, extra={"label": "x"})
    restored = load_checkpoint(tmp_path / "a.npz", make(problem, learn_lambda=True))
    np.testing.assert_array_equal(restored.eta[...], solver.eta[...])
    np.testing.assert_array_equal(restored.xi[...], solver.xi[...])
    assert restored.eta[...].dtype == np.float32
    metadata = read_checkpoint_metadata(tmp_path / "a.npz")
    assert metadata["solver"] == "dugd" and metadata["depth"] == 6 and metadata["label"] == "x"
    assert metadata["params"]["eta"] == {"shape": [4], "dtype": "float32"}


def test_a_file_from_another_configuration_is_refused_naming_the_differences(problem, tmp_path):
    save_checkpoint(tmp_path / "a.npz", make(problem, period=4))
    with pytest.raises(CheckpointError, match=r"option period: file has 4, expected 2"):
        load_checkpoint(tmp_path / "a.npz", make(problem, period=2))
    with pytest.raises(CheckpointError, match=r"depth: file has 6, expected 7"):
        load_checkpoint(tmp_path / "a.npz", make(problem, depth=7))


def test_files_that_are_not_checkpoints_are_refused(problem, tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="is not a du-framework checkpoint"):
        load_checkpoint(tmp_path / "junk.npz", make(problem))
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.npz", make(problem))


def test_pickled_content_is_never_loaded(problem, tmp_path):
    # A checkpoint whose metadata is an object array would need pickle to load.
    np.savez(tmp_path / "evil.npz", __metadata__=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(CheckpointError, match="not a du-framework checkpoint"):
        load_checkpoint(tmp_path / "evil.npz", make(problem))


def test_a_crash_while_writing_leaves_the_old_file_intact(problem, tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    good = make(problem)
    good.eta[...] = np.full(4, 0.5, np.float32)
    save_checkpoint(path, good)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, make(problem))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"], "the temporary file must be removed"


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "r.json"
    with atomic_write(path) as handle:
        handle.write(json.dumps({"ok": 1}))
    with pytest.raises(RuntimeError):
        with atomic_write(path) as handle:
            handle.write("{half")
            raise RuntimeError("crash")
    assert json.loads(path.read_text()) == {"ok": 1}
