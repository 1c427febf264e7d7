"""Untrusted files: hostile .npy/.npz headers and archives, checkpoints of other problems, --checkpoints rules.

Every hostile input must end in a ProblemDataError or CheckpointError naming the
file, before any large allocation; nothing is ever unpickled.
"""

import io
import json
import time
import warnings
import zipfile

import numpy as np
import pytest

from du_framework import CheckpointError, ProblemDataError
from du_framework.io.checkpoint import LoadedCheckpoint, load_checkpoint, read_checkpoint_metadata, save_checkpoint
from du_framework.cli import main
from du_framework.matrix import load_matrix
from du_framework.io.safe_files import read_npy, read_npz
from du_framework.testing import small_problem

from core_plugin import SMALL_TOML, LearnedGD, core_plugin  # noqa: F401 - the fixture


# --- helpers ---------------------------------------------------------------------------------------

def npy_bytes(array, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


def lying_header(shape, descr="<f4") -> bytes:
    """An .npy header (magic included) declaring ``shape``, with no data after it."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path, contents: dict[str, bytes] | list[tuple[str, bytes]]) -> None:
    items = contents.items() if isinstance(contents, dict) else contents
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in items:
                archive.writestr(name, data)


def with_metadata(path, change) -> None:
    """Rewrite the checkpoint at ``path`` with ``change(metadata)`` as its JSON header."""
    contents = members(path)
    metadata = json.loads(np.load(io.BytesIO(contents["__metadata__.npy"])).tobytes())
    contents["__metadata__.npy"] = npy_bytes(np.frombuffer(json.dumps(change(metadata)).encode(), np.uint8))
    write_zip(path, contents)


@pytest.fixture(scope="module")
def problem():
    return small_problem(n=4, m=8)


def make(problem, depth=6, **options):
    options.setdefault("period", 4)
    return LearnedGD(LearnedGD.Options(**options), problem=problem, depth=depth)


@pytest.fixture
def checkpoint(problem, tmp_path):
    path = tmp_path / "good.npz"
    solver = make(problem)
    solver.eta[...] = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    save_checkpoint(path, solver, problem=problem, problem_options=problem_options(), extra={"label": "learned"})
    return path


def problem_options(**changes):
    from du_framework.testing.problems import SmallLeastSquares

    return SmallLeastSquares.Options(**{"n": 4, "m": 8, **changes})


# --- .npy files (user matrices) -------------------------------------------------------------------

def test_an_empty_npy_file_is_refused(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(ProblemDataError, match=r"problem.matrix: '.*empty.npy' is not a readable .npy array"):
        load_matrix(tmp_path / "empty.npy", shape=(3, 2))
    np.save(tmp_path / "zero.npy", np.zeros((0, 2)))
    with pytest.raises(ProblemDataError, match=r"holds an empty array of shape \(0, 2\)"):
        load_matrix(tmp_path / "zero.npy", shape=(3, 2))


@pytest.mark.parametrize("shape", [(10**12,), (10**6, 10**6), (2**62, 2**62), (0, 2**60)])
def test_a_header_claiming_huge_arrays_fails_fast_without_allocating(tmp_path, shape):
    (tmp_path / "liar.npy").write_bytes(lying_header(shape) + b"\0" * 64)
    start = time.perf_counter()
    with pytest.raises(ProblemDataError, match=r"liar.npy'.*above the limit of 2.0 GiB; refused before reading"):
        load_matrix(tmp_path / "liar.npy", shape=(3, 2))
    assert time.perf_counter() - start < 5.0  # a believed header would allocate terabytes; slack for a loaded machine


def test_a_header_that_does_not_match_the_file_size_is_refused(tmp_path):
    (tmp_path / "short.npy").write_bytes(lying_header((3, 2), "<f8") + b"\0" * 40)  # 48 bytes declared
    with pytest.raises(ProblemDataError, match=r"declares a 3 x 2 float64 array \(48 bytes of data\) but the file "
                                               r"holds 40 bytes"):
        load_matrix(tmp_path / "short.npy", shape=(3, 2))
    (tmp_path / "long.npy").write_bytes(npy_bytes(np.ones((3, 2))) + b"junk")
    with pytest.raises(ProblemDataError, match="holds 52 bytes after the header"):
        load_matrix(tmp_path / "long.npy", shape=(3, 2))
    # a small limit refuses before reading, whatever the file holds
    np.save(tmp_path / "ok.npy", np.ones((3, 2)))
    with pytest.raises(ProblemDataError, match="above the limit"):
        read_npy(tmp_path / "ok.npy", limit=47)
    np.testing.assert_array_equal(read_npy(tmp_path / "ok.npy", limit=48), np.ones((3, 2)))


@pytest.mark.parametrize("array, message", [
    (np.array([[object()] * 2] * 3, dtype=object), "objects would need pickle"),
    (np.ones((3, 2), np.complex128), "holds complex128 values; expected integer, unsigned, float"),
    (np.array([["a", "b"]] * 3), "holds <U1 values"),
    (np.ones((3, 2), bool), "holds bool values"),
    (np.zeros(3, dtype=[("a", "<f8"), ("b", "<f8")]).repeat(2).reshape(3, 2), "objects or records"),
])
def test_matrices_that_are_not_real_numbers_are_refused(tmp_path, array, message):
    np.save(tmp_path / "m.npy", array, allow_pickle=True)
    with pytest.raises(ProblemDataError, match=message):
        load_matrix(tmp_path / "m.npy", shape=(3, 2))


def test_entries_that_would_overflow_the_gram_matrix_are_refused(tmp_path):
    matrix = np.ones((3, 2))
    matrix[1, 0] = 1e200
    np.save(tmp_path / "huge.npy", matrix)
    with pytest.raises(ProblemDataError, match=r"entries as large as 1e\+200 .* at index \(1, 0\).*A\^T A would "
                                               r"overflow"):
        load_matrix(tmp_path / "huge.npy", shape=(3, 2))
    matrix[1, 0] = 1e10
    np.save(tmp_path / "fine.npy", matrix)
    assert load_matrix(tmp_path / "fine.npy", shape=(3, 2))[1, 0] == 1e10


def test_big_endian_and_fortran_order_files_read_correctly(tmp_path):
    matrix = np.arange(6.0).reshape(3, 2)
    np.save(tmp_path / "f.npy", np.asfortranarray(matrix).astype(">f4"))
    loaded = load_matrix(tmp_path / "f.npy", shape=(3, 2))
    np.testing.assert_array_equal(loaded, matrix)
    assert loaded.dtype == np.float64


# --- .npz archives and checkpoint files -----------------------------------------------------------

@pytest.mark.parametrize("version, length", [((1, 0), 0xFFFF), ((2, 0), 2**31)])
def test_a_header_length_beyond_the_file_is_refused_before_it_is_read(tmp_path, version, length):
    import struct
    import tracemalloc

    field = struct.pack("<H" if version == (1, 0) else "<I", length)
    (tmp_path / "long.npy").write_bytes(b"\x93NUMPY" + bytes(version) + field + b"{'descr': '<f4'" + b" " * 100)
    tracemalloc.start()
    try:
        with pytest.raises(ProblemDataError, match=rf"header claims {length} bytes.*refused before reading"):
            load_matrix(tmp_path / "long.npy", shape=(3, 2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024**2, f"{peak} bytes allocated to refuse a {length}-byte header claim"


def test_a_checkpoint_member_claiming_huge_arrays_fails_fast(problem, checkpoint):
    contents = members(checkpoint)
    contents["param/eta.npy"] = lying_header((10**12,))
    write_zip(checkpoint, contents)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"good.npz' \(member 'param/eta.npy'\).*1000000000000 float32 array "
                                              r"\(3.6 TiB\), above the limit"):
        load_checkpoint(checkpoint, make(problem))
    assert time.perf_counter() - start < 5.0  # a believed header would allocate terabytes; slack for a loaded machine


def test_a_member_declaring_more_than_the_limit_is_refused_before_reading(tmp_path):
    write_zip(tmp_path / "bomb.npz", {"x.npy": npy_bytes(np.zeros(100_000))})  # 800 kB declared
    with pytest.raises(ProblemDataError, match=r"member 'x.npy' declares 781.4 KiB .* above the limit of 1000 bytes"):
        read_npz(tmp_path / "bomb.npz", limit=1000)
    assert read_npz(tmp_path / "bomb.npz")["x"].shape == (100_000,)


def test_a_truncated_checkpoint_is_refused_naming_the_file(problem, checkpoint):
    data = checkpoint.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        checkpoint.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"good.npz' is not a readable .npz archive"):
            load_checkpoint(checkpoint, make(problem))


def test_any_flipped_byte_loads_unchanged_or_is_a_clean_checkpoint_error(problem, checkpoint):
    data = checkpoint.read_bytes()
    eta = data.index(np.array([0.1, 0.2, 0.3, 0.4], np.float32).tobytes())
    refused = 0
    for position in range(len(data)):
        flipped, message = bytearray(data), ""
        flipped[position] ^= 0xFF
        checkpoint.write_bytes(bytes(flipped))
        try:
            loaded = load_checkpoint(checkpoint, make(problem), problem=problem, problem_options=problem_options())
        except CheckpointError as error:
            assert "good.npz" in str(error)
            refused, message = refused + 1, str(error)  # noqa: F841 - read below
        else:  # a byte zipfile ignores (a timestamp, say): the parameters must be intact
            np.testing.assert_array_equal(loaded.eta[...], np.array([0.1, 0.2, 0.3, 0.4], np.float32))
        if position == eta:
            assert "Bad CRC-32" in message, "a flipped data byte must be caught by the CRC"
    assert refused > len(data) // 2


@pytest.mark.parametrize("change, message", [
    (lambda m: None, "its header is NoneType JSON \\(null\\), not an object"),
    (lambda m: [m], "its header is list JSON"),
    (lambda m: "checkpoint", "its header is str JSON"),
    (lambda m: {**m, "format": 3}, "format 3, expected 'du-framework-checkpoint'"),
    (lambda m: {**m, "format_version": "3"}, "format_version '3'"),
    (lambda m: {**m, "format_version": 99}, "format_version 99; this du-framework reads versions 1 to 3"),
    (lambda m: {**m, "depth": "6"}, "'depth' is \"6\", expected an integer >= 1"),
    (lambda m: {**m, "depth": True}, "'depth' is true, expected an integer >= 1"),
    (lambda m: {**m, "options": [1, 2]}, "'options' is \\[1, 2\\], expected an object"),
    (lambda m: {k: v for k, v in m.items() if k != "solver"}, "its header has no 'solver'"),
    (lambda m: {**m, "params": {"eta": None}}, "params.eta is null, expected an object"),
    (lambda m: {**m, "params": {"eta": {**m["params"]["eta"], "shape": "x"}}}, "params.eta.shape is \"x\""),
    (lambda m: {**m, "params": {"eta": {**m["params"]["eta"], "dtype": 4}}}, "params.eta.dtype is 4"),
    (lambda m: {**m, "problem": []}, "'problem' is \\[\\], expected an object"),
    (lambda m: {**m, "problem": {**m["problem"], "sha256": 5}}, "problem.sha256 is 5, expected a string"),
    (lambda m: {**m, "label": ["x"]}, "'label' is \\[\"x\"\\], expected a string"),
])
def test_a_header_of_the_wrong_structure_is_refused(problem, checkpoint, change, message):
    with_metadata(checkpoint, change)
    with pytest.raises(CheckpointError, match="good.npz' is not a valid du-framework checkpoint: " + message):
        load_checkpoint(checkpoint, make(problem))


def test_a_header_that_is_not_json_is_refused(problem, checkpoint):
    contents = members(checkpoint)
    for raw in (b"\xff\xfe", b"{", b'{"format": NaN}'):
        contents["__metadata__.npy"] = npy_bytes(np.frombuffer(raw, np.uint8))
        write_zip(checkpoint, contents)
        with pytest.raises(CheckpointError, match="good.npz' is not a du-framework checkpoint \\(its header is not JSON"):
            load_checkpoint(checkpoint, make(problem))


@pytest.mark.parametrize("name", ["../x.npy", "/x.npy", "a/../../x.npy", "..\\x.npy", "C:/x.npy", "a//b.npy"])
def test_path_like_member_names_are_refused(problem, checkpoint, name):
    write_zip(checkpoint, {**members(checkpoint), name: npy_bytes(np.zeros(1))})
    with pytest.raises(CheckpointError, match=f"member named {name!r}".replace("\\", "\\\\").replace(".", "\\.")
                                              + ", which looks like a path; refused"):
        load_checkpoint(checkpoint, make(problem))


def test_duplicate_and_foreign_members_are_refused(problem, checkpoint):
    contents = members(checkpoint)
    write_zip(checkpoint, [*contents.items(), ("param/eta.npy", npy_bytes(np.full(4, 9.0, np.float32)))])
    with pytest.raises(CheckpointError, match="holds two members named 'param/eta.npy'; refused"):
        load_checkpoint(checkpoint, make(problem))
    write_zip(checkpoint, {**contents, "run.sh": b"rm -rf /"})
    with pytest.raises(CheckpointError, match="holds a member 'run.sh' that is not a .npy array"):
        load_checkpoint(checkpoint, make(problem))
    write_zip(checkpoint, {**contents, "other.npy": npy_bytes(np.zeros(1))})
    with pytest.raises(CheckpointError, match="unexpected array 'other'"):
        load_checkpoint(checkpoint, make(problem))


@pytest.mark.parametrize("value, message", [
    (np.array([0.1, np.nan, 0.3, 0.4], np.float32), r"parameter eta: 1 non-finite values \(NaN or inf\), the first "
                                                     r"at index \(1,\); parameters must be finite"),
    (np.array([0.1, 0.2, np.inf, 0.4], np.float32), r"parameter eta: 1 non-finite values"),
    (np.array([0.1, 0.2, 0.3, 0.4], np.complex64), r"parameter eta: file holds complex complex64 values; parameters "
                                                    r"are real \(float32\)"),
    (np.array(["a", "b", "c", "d"]), r"parameter eta: file holds <U1 values; parameters are real numbers"),
    (np.array([0.1, 0.2, 0.3, 0.4], np.float64), r"parameter eta: file holds float64 values but its header declares "
                                                  r"float32"),
    (np.zeros(5, np.float32), r"parameter eta: file holds shape \(5,\) but its header declares \(4,\)"),
])
def test_parameters_must_be_real_finite_and_as_declared(problem, checkpoint, value, message):
    write_zip(checkpoint, {**members(checkpoint), "param/eta.npy": npy_bytes(value)})
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(checkpoint, make(problem))


def test_an_object_parameter_is_refused_without_unpickling(problem, checkpoint):
    write_zip(checkpoint, {**members(checkpoint),
                           "param/eta.npy": npy_bytes(np.array([print] * 4, dtype=object), allow_pickle=True)})
    with pytest.raises(CheckpointError, match=r"member 'param/eta.npy'.*objects would need pickle"):
        load_checkpoint(checkpoint, make(problem))


def test_a_parameter_missing_from_the_file_or_extra_in_it_is_refused(problem, checkpoint):
    contents = members(checkpoint)
    del contents["param/eta.npy"]
    write_zip(checkpoint, contents)
    with pytest.raises(CheckpointError, match="parameter eta: missing from the file"):
        load_checkpoint(checkpoint, make(problem))


# --- checkpoints identify their problem -------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"lam": 2.0}, r"problem option lam: file has 1.0, expected 2.0; problem data \(sha256"),
    ({"seed": 1}, r"problem option seed: file has 0, expected 1; problem data"),
    ({"n": 5}, r"problem option n: file has 4, expected 5; problem data"),
])
def test_a_checkpoint_of_another_problem_is_refused_and_allowed_with_the_flag(checkpoint, changes, message):
    other = small_problem(**{"n": 4, "m": 8, **changes})
    solver = make(other)
    with pytest.raises(CheckpointError, match=r"does not match this problem: " + message
                                              + r".*allow_problem_mismatch=True; unfold compare "
                                                r"--allow-problem-mismatch"):
        load_checkpoint(checkpoint, solver, problem=other, problem_options=problem_options(**changes))
    found = load_checkpoint(checkpoint, solver, problem=other, problem_options=problem_options(**changes),
                            allow_problem_mismatch=True, details=True)
    assert isinstance(found, LoadedCheckpoint)
    assert found.problem_mismatch[0].startswith("problem option ") and "problem data" in found.problem_mismatch[-1]
    np.testing.assert_array_equal(found.solver.eta[...], np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    with pytest.warns(UserWarning, match="was trained on another problem \\(allowed\\)"):
        load_checkpoint(checkpoint, solver, problem=other, problem_options=problem_options(**changes),
                        allow_problem_mismatch=True)


def test_other_problem_data_under_the_same_options_is_refused(problem, checkpoint):
    # the same options, other arrays (as when a matrix file's content changed under the same path)
    other = small_problem(n=4, m=8)
    other.A = other.A * 2
    with pytest.raises(CheckpointError, match=r"does not match this problem: problem data \(sha256 of describe\(\) "
                                              r"and its arrays, e\.g\. a matrix file\): file has [0-9a-f]{12}\.\.\."):
        load_checkpoint(checkpoint, make(other), problem=other, problem_options=problem_options())
    assert load_checkpoint(checkpoint, make(problem), problem=problem, problem_options=problem_options()) is not None


def test_solver_differences_are_refused_even_with_the_flag(problem, checkpoint):
    other = small_problem(n=4, m=8, lam=2.0)
    with pytest.raises(CheckpointError, match=r"solver configuration: depth: file has 6, expected 7; problem option "
                                              r"lam"):
        load_checkpoint(checkpoint, make(other, depth=7), problem=other, problem_options=problem_options(lam=2.0))
    with pytest.raises(CheckpointError, match=r"solver configuration: depth: file has 6, expected 7. Retrain"):
        load_checkpoint(checkpoint, make(other, depth=7), problem=other, problem_options=problem_options(lam=2.0),
                        allow_problem_mismatch=True)


# --- the command line ---------------------------------------------------------------------------

@pytest.fixture
def small_config(tmp_path, core_plugin):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_TOML + '\n[[solvers]]\nname = "learned-gd"\nlabel = "learned2"\nperiod = 2\n')
    return path


def run(*args):
    return main([*map(str, args)])


def test_the_checkpoints_folder_must_exist_and_hold_every_trainable_solver(small_config, tmp_path, capsys):
    base = ["compare", "--config", small_config, "--no-progress", "--no-plots"]
    assert run(*base, "--out", tmp_path / "a", "--checkpoints", tmp_path / "no-such-dir") == 2
    err = capsys.readouterr().err
    assert err.startswith("unfold: error: checkpoint folder") and "no-such-dir' does not exist" in err
    assert not (tmp_path / "a" / "results.json").exists(), "nothing is trained when the folder is missing"
    (tmp_path / "file").write_text("x")
    assert run(*base, "--out", tmp_path / "a", "--checkpoints", tmp_path / "file") == 2
    assert "file' is not a folder" in capsys.readouterr().err

    trained = tmp_path / "trained"
    assert run("train", "--config", small_config, "--out", trained, "--no-progress", "--only", "learned") == 0
    capsys.readouterr()
    assert run(*base, "--out", tmp_path / "b", "--checkpoints", trained / "checkpoints") == 2
    err = capsys.readouterr().err
    assert "no checkpoint in" in err and "for learned2 (expected learned2.npz)" in err and "--train-missing" in err
    assert run(*base, "--out", tmp_path / "c", "--checkpoints", trained / "checkpoints", "--train-missing") == 0
    err = capsys.readouterr().err
    assert "no checkpoint for learned2 in" in err and "training it (--train-missing)" in err
    solvers = json.loads((tmp_path / "c" / "results.json").read_text())["solvers"]
    assert solvers["learned"]["loaded_from"].endswith("learned.npz") and solvers["learned"]["train_seconds"] == 0
    assert solvers["learned2"]["loaded_from"] is None and solvers["learned2"]["train_seconds"] > 0
    assert solvers["learned"]["problem_mismatch"] is None

    # the same checkpoints on another problem: refused, then allowed with the flag, which says so
    other = [*base, "--only", "learned,gd", "--set", "problem.lam=2.0", "--checkpoints", trained / "checkpoints"]
    assert run(*other, "--out", tmp_path / "d") == 2
    err = capsys.readouterr().err
    assert "does not match this problem: problem option lam: file has 1.0, expected 2.0" in err
    assert "--allow-problem-mismatch" in err and "Traceback" not in err
    assert run(*other, "--out", tmp_path / "e", "--allow-problem-mismatch") == 0
    err = capsys.readouterr().err
    assert "warning: learned: checkpoint" in err and "was trained on another problem" in err
    mismatch = json.loads((tmp_path / "e" / "results.json").read_text())["solvers"]["learned"]["problem_mismatch"]
    assert mismatch[0] == "problem option lam: file has 1.0, expected 2.0" and "problem data" in mismatch[1]
    metadata = read_checkpoint_metadata(trained / "checkpoints" / "learned.npz")
    assert metadata["problem"]["options"] == {"n": 8, "m": 16, "lam": 1.0, "seed": 0}

    assert run(*base, "--out", tmp_path / "f", "--train-missing") == 2
    assert "apply to --checkpoints DIR, which is not given" in capsys.readouterr().err
