"""Checkpoints: round trip, refusal of other configurations, atomic writes, no pickle."""

import json
import zipfile

import numpy as np
import pytest

from du_framework import CheckpointError
from du_framework.io.atomic import atomic_write
from du_framework.io.checkpoint import load_checkpoint, problem_fingerprint, read_checkpoint_metadata, save_checkpoint
from du_framework.testing import small_problem

from core_plugin import LearnedGD


@pytest.fixture(scope="module")
def problem():
    return small_problem(n=4, m=8)


def make(problem, depth=6, **options):
    options.setdefault("period", 4)
    return LearnedGD(LearnedGD.Options(**options), problem=problem, depth=depth)


def test_round_trip_restores_every_raw_parameter(problem, tmp_path):
    solver = make(problem, reciprocal=True)
    solver.eta[...] = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    save_checkpoint(tmp_path / "a.npz", solver, problem=problem, extra={"label": "x"})
    restored = load_checkpoint(tmp_path / "a.npz", make(problem, reciprocal=True))
    np.testing.assert_array_equal(restored.eta[...], solver.eta[...])
    assert restored.eta[...].dtype == np.float32
    np.testing.assert_allclose(restored.learned_parameters()["eta"], solver.learned_parameters()["eta"])


def test_the_header_names_solver_depth_options_constraints_and_problem(problem, tmp_path):
    solver = make(problem, reciprocal=True)
    save_checkpoint(tmp_path / "a.npz", solver, problem=problem, extra={"label": "x"})
    metadata = read_checkpoint_metadata(tmp_path / "a.npz")
    assert metadata["solver"] == "learned-gd" and metadata["depth"] == 6 and metadata["label"] == "x"
    assert metadata["options"] == {"period": 4, "init_step": 0.0, "reciprocal": True, "lr": 1e-2}
    assert metadata["params"]["eta"]["shape"] == [4] and metadata["params"]["eta"]["dtype"] == "float32"
    assert metadata["params"]["eta"]["constraint"] == solver.eta.constraint.describe()
    assert metadata["problem"]["name"] == "conformance-least-squares"
    assert metadata["problem"]["describe"] == json.loads(json.dumps(problem.describe()))
    assert metadata["problem"]["sha256"] == problem_fingerprint(problem) and len(problem_fingerprint(problem)) == 64
    with np.load(tmp_path / "a.npz", allow_pickle=False) as archive:
        assert sorted(archive.files) == ["__metadata__", "param/eta"]


def test_a_file_from_another_configuration_is_refused_naming_the_differences(problem, tmp_path):
    save_checkpoint(tmp_path / "a.npz", make(problem, period=4))
    with pytest.raises(CheckpointError, match=r"option period: file has 4, expected 2"):
        load_checkpoint(tmp_path / "a.npz", make(problem, period=2))
    with pytest.raises(CheckpointError, match=r"depth: file has 6, expected 7; option lr: file has 0.01, expected 0.1"):
        load_checkpoint(tmp_path / "a.npz", make(problem, depth=7, lr=0.1))


def test_a_parameter_stored_under_another_constraint_is_refused(problem, tmp_path):
    path = tmp_path / "a.npz"
    save_checkpoint(path, make(problem))
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    metadata = json.loads(bytes(arrays["__metadata__"]).decode())
    metadata["params"]["eta"]["constraint"] = "> 0 (exp)"  # the same array meant log(eta) when written
    arrays["__metadata__"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=r"parameter eta: file has constraint '> 0 \(exp\)', expected 'any real'"):
        load_checkpoint(path, make(problem))


def test_files_that_are_not_checkpoints_are_refused(problem, tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"junk.npz' is not a readable .npz archive \(BadZipFile"):
        load_checkpoint(tmp_path / "junk.npz", make(problem))
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.npz", make(problem))
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(CheckpointError, match="is not a du-framework checkpoint"):
        load_checkpoint(tmp_path / "empty.npz", make(problem))


def test_pickled_content_is_never_loaded(problem, tmp_path):
    # A checkpoint whose metadata is an object array would need pickle to load.
    np.savez(tmp_path / "evil.npz", __metadata__=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(CheckpointError, match=r"evil.npz' \(member '__metadata__.npy'\).*objects would need pickle"):
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
