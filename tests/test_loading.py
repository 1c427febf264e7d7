"""du_framework.workbench.loading: saved runs read back (schema 2 as written, schema 3, training runs, hostile files)."""

import csv
import json
import os

import numpy as np
import pytest

from du_framework.workbench.loading import (LONG_FORMAT_COLUMNS, MAX_CSV_BYTES, MAX_JSON_BYTES, ManifestMismatchError, Run,
                                  RunFileError, load_run)

from core_plugin import core_plugin  # noqa: F401 - the fixture
from run_fixtures import (DEPTH, SCHEMA2_RUN, SEEDS, STATUS, copy_run, live_run, per_seed_mse, read_json,
                          schema3_results, train_run, training_rows, write_schema3_run)


# --- schema 2, as unfold compare wrote it before seeds ------------------------------------------------


def test_schema2_run_reads_every_curve_as_written():
    run = load_run(SCHEMA2_RUN)
    raw = read_json(SCHEMA2_RUN / "results.json")
    assert run.schema_version == 2 and run.kind == "compare" and run.depth == 5
    assert list(run.solvers) == list(raw["solvers"]) == ["learned", "gd"]
    for label, entry in raw["solvers"].items():
        for name, values in entry["metrics"].items():
            np.testing.assert_array_equal(run.solvers[label].metrics[name], np.array(values, float))
    assert run.metrics["mse"].log_axis is True, "guessed for schema 2: the built-in MSE, positive"
    assert run.metrics["nmse_db"].scale == "db" and run.metrics["nmse_db"].log_axis is False
    assert run.config == read_json(SCHEMA2_RUN / "config.json") and run.problem == raw["problem"]
    assert run.provenance == raw["provenance"]


def test_schema2_learned_solver_is_one_seed_without_spread():
    run = load_run(SCHEMA2_RUN)
    learned, gd = run.solvers["learned"], run.solvers["gd"]
    seed = read_json(SCHEMA2_RUN / "config.json")["train"]["seed"]
    assert learned.seeds == [seed] and learned.seed_status == ["ok"] and learned.spread is None
    np.testing.assert_array_equal(learned.per_seed_metrics["mse"][0], learned.metrics["mse"])
    assert gd.seeds == [] and gd.per_seed_metrics is None and not gd.trainable
    assert learned.params["eta"].shape == (4,)


def test_schema2_manifest_is_verified_and_the_missing_history_named():
    run = load_run(SCHEMA2_RUN)
    listed = set(read_json(SCHEMA2_RUN / "manifest.json")["files"])
    assert set(run.verified) == listed and "results.json" in listed
    assert run.warnings == []
    assert any("training.csv" in note for note in run.missing)


# --- schema 3 -----------------------------------------------------------------------------------------


@pytest.fixture
def schema3(tmp_path):
    return write_schema3_run(tmp_path / "s3")


def test_schema3_seeds_status_and_per_seed_curves(schema3):
    run = load_run(schema3)
    learned = run.solvers["learned"]
    assert run.schema_version == 3 and run.train_seeds == SEEDS and run.summary["center"] == "median"
    assert learned.seeds == SEEDS and learned.seed_status == STATUS
    assert learned.ok_seeds == [11, 13] and learned.diverged_seeds == [12]
    np.testing.assert_array_equal(learned.per_seed_metrics["mse"], per_seed_mse())  # NaN where diverged
    assert learned.diverged_at == [None, {"stage": 3, "step": 2}, None]
    assert learned.per_seed_final_loss == [0.01, None, 0.02] and learned.representative_seed == 11
    np.testing.assert_array_equal(learned.per_seed_params[2]["eta"], [0.13, 0.27])


def test_schema3_central_curve_and_spread_are_the_median_and_range_of_the_seeds_that_did_not_diverge(schema3):
    learned = load_run(schema3).solvers["learned"]
    ok = per_seed_mse()[[0, 2]]
    np.testing.assert_allclose(learned.metrics["mse"], (ok[0] + ok[1]) / 2)
    low, high = learned.spread["mse"]
    np.testing.assert_allclose(low, np.minimum(ok[0], ok[1]))
    np.testing.assert_allclose(high, np.maximum(ok[0], ok[1]))


def test_schema3_loss_history_and_stage_summary(schema3):
    learned = load_run(schema3).solvers["learned"]
    assert sorted(learned.losses) == SEEDS and sorted(learned.stages) == SEEDS
    expected = [row for row in training_rows() if row[1] == 13]
    history = learned.losses[13]
    np.testing.assert_array_equal(history.step, [row[2] for row in expected])
    np.testing.assert_array_equal(history.stage, [1, 1, 2, 2, 3, 3])
    np.testing.assert_allclose(history.loss, 1.0 / (np.arange(1, 7) * 13))
    assert np.isnan(learned.losses[12].loss[4:]).all()
    np.testing.assert_allclose(learned.stages[11].mean_loss, 1.0 / (np.arange(1, 4) * 11))
    assert learned.stages[11].steps.tolist() == [2, 2, 2]


def test_a_missing_loss_history_is_explained_by_its_cause(tmp_path):
    from du_framework.workbench import figures

    classical = schema3_results()
    del classical["solvers"]["learned"]  # a current run of classical solvers only: nothing was trained
    runs = {"classical": load_run(write_schema3_run(tmp_path / "classical", classical, history=False)),
            "old": load_run(SCHEMA2_RUN),
            "removed": load_run(write_schema3_run(tmp_path / "removed", history=False))}
    notes = {name: next(m for m in run.missing if m.startswith("no loss history")) for name, run in runs.items()}
    assert "nothing was trained in this run" in notes["classical"] and "schema" not in notes["classical"]
    assert "predates results schema 3" in notes["old"] and "it is schema 2" in notes["old"]
    assert "holds no training.csv" in notes["removed"] and "nothing was trained" not in notes["removed"]
    with pytest.raises(RunFileError, match=r"'classical': no loss history saved \(nothing was trained in this run"):
        figures.losses_figure(runs["classical"])
    with pytest.raises(RunFileError, match=r"the solvers chosen have none; those of learned are saved"):
        figures.losses_figure(load_run(write_schema3_run(tmp_path / "full")), solvers="gd")


def test_classical_solver_of_schema3_has_no_seeds(schema3):
    gd = load_run(schema3).solvers["gd"]
    assert gd.seeds == [] and gd.spread is None and gd.per_seed_metrics is None and gd.losses == {}


def test_metric_records_log_axis_and_format(schema3):
    run = load_run(schema3)
    assert run.metrics["mse"].log_axis is True and run.metrics["mse"].show(0.000123) == "1.230e-04"
    assert run.metrics["nmse_db"].show(-3.14159) == "-3.14"
    assert run.metric().name == "mse" and run.metric("nmse_db").scale == "db"
    with pytest.raises(RunFileError, match=r"no metric 'nmse-db'.*did you mean 'nmse_db'"):
        run.metric("nmse-db")


def test_from_results_equals_the_folder(schema3):
    folder_run = load_run(schema3)
    memory_run = Run.from_results(schema3_results(), schema3)
    assert memory_run.long_format() == folder_run.long_format() or _same_rows(memory_run, folder_run)
    assert sorted(memory_run.solvers["learned"].losses) == SEEDS, "the history is read from the folder"
    bare = Run.from_results(schema3_results())
    assert bare.folder is None and bare.label == "run" and bare.solvers["learned"].losses == {}


def _same_rows(a: Run, b: Run) -> bool:  # NaN != NaN: compare row by row
    rows_a, rows_b = a.long_format(), b.long_format()
    return len(rows_a) == len(rows_b) and all(
        {k: v for k, v in x.items() if k != "value"} == {k: v for k, v in y.items() if k != "value"}
        and (x["value"] == y["value"] or (np.isnan(x["value"]) and np.isnan(y["value"])))
        for x, y in zip(rows_a, rows_b))


# --- the long format ----------------------------------------------------------------------------------


def test_long_format_rows_match_the_json(schema3):
    run = load_run(schema3, label="mine")
    raw = schema3_results()
    rows = run.long_format()
    assert all(tuple(row) == LONG_FORMAT_COLUMNS for row in rows)
    # learned: 3 seeds x 2 metrics x DEPTH; gd: 1 curve x 2 metrics x DEPTH
    assert len(rows) == 3 * 2 * DEPTH + 2 * DEPTH
    for row in rows:
        entry = raw["solvers"][row["solver"]]
        assert row["run"] == "mine"
        if row["seed"] is None:
            expected = entry["metrics"][row["metric"]][row["iteration"] - 1]
            assert row["status"] is None
        else:
            index = entry["seeds"].index(row["seed"])
            expected = entry["per_seed"]["metrics"][row["metric"]][index][row["iteration"] - 1]
            assert row["status"] == entry["seed_status"][index]
        if expected is None:
            assert np.isnan(row["value"])
        else:
            assert row["value"] == expected


def test_long_format_of_schema2_matches_results_csv():
    rows = load_run(SCHEMA2_RUN).long_format()
    with open(SCHEMA2_RUN / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    by_key = {(r["solver"], r["iteration"], r["metric"]): r["value"] for r in rows}
    for line in table:
        for name in ("mse", "nmse_db"):
            assert by_key[line["solver"], int(line["iteration"]), name] == float(line[name])
    assert len(rows) == 2 * len(table)


def test_to_dataframe_when_pandas_is_installed(schema3):
    pandas = pytest.importorskip("pandas")
    frame = load_run(schema3).to_dataframe()
    assert list(frame.columns) == list(LONG_FORMAT_COLUMNS) and len(frame) == 3 * 2 * DEPTH + 2 * DEPTH
    assert isinstance(frame, pandas.DataFrame)


# --- what the current version writes ------------------------------------------------------------------


def test_current_compare_output_reads_back_as_written():
    folder = live_run()
    raw = read_json(folder / "results.json")
    run = load_run(folder)
    assert run.schema_version == raw["schema_version"] and run.warnings == []
    for label, entry in raw["solvers"].items():
        for name, values in entry["metrics"].items():
            expected = np.array([np.nan if v is None else v for v in values], float)
            np.testing.assert_array_equal(run.solvers[label].metrics[name], expected)
    if (folder / "training.csv").exists():
        with open(folder / "training.csv") as handle:
            steps = [r for r in csv.DictReader(handle) if r["solver"] == "learned"]
        history = run.solvers["learned"].losses
        assert sum(len(h.loss) for h in history.values()) == len(steps)
        first = history[int(steps[0]["seed"])]
        assert first.loss[0] == float(steps[0]["loss"])


def test_training_run_says_what_it_lacks():
    run = load_run(train_run())
    assert run.kind == "train" and run.schema_version is None and not run.has_curves
    assert list(run.solvers) == ["learned"], "only the trained solver has a checkpoint"
    learned = run.solvers["learned"]
    assert learned.params == {} and learned.stored_params["eta"].shape == (4,)
    assert learned.checkpoint.name == "learned.npz" and run.problem["name"] == "conformance-least-squares"
    assert any("unfold compare --checkpoints" in note for note in run.missing)
    assert any("gd" in note for note in run.missing), "the classical solver left out is named"
    with pytest.raises(RunFileError, match="no evaluation curves"):
        run.metric()


# --- the manifest -------------------------------------------------------------------------------------


def test_a_changed_results_file_is_refused_unless_verification_is_off(tmp_path):
    folder = copy_run(SCHEMA2_RUN, tmp_path / "run")
    data = read_json(folder / "results.json")
    data["solvers"]["learned"]["metrics"]["mse"][0] = 1e-9  # a better number than the run produced
    (folder / "results.json").write_text(json.dumps(data))
    with pytest.raises(ManifestMismatchError, match=r"results.json was changed.*verify=False"):
        load_run(folder)
    run = load_run(folder, verify=False)
    assert run.solvers["learned"].metrics["mse"][0] == 1e-9
    assert any("results.json was changed" in w for w in run.warnings)


def test_a_changed_file_the_loader_does_not_read_is_a_warning(tmp_path):
    folder = copy_run(SCHEMA2_RUN, tmp_path / "run")
    (folder / "results.csv").write_text("edited\n")
    (folder / "config.toml").unlink()
    run = load_run(folder)
    assert any("results.csv was changed" in w for w in run.warnings)
    assert any("config.toml is listed in manifest.json but missing" in w for w in run.warnings)


def test_a_run_without_manifest_is_read_with_a_warning(tmp_path):
    folder = write_schema3_run(tmp_path / "run", manifest=False)
    run = load_run(folder)
    assert run.verified == [] and any("no manifest.json" in w for w in run.warnings)


def test_a_manifest_path_outside_the_folder_is_refused(tmp_path):
    folder = write_schema3_run(tmp_path / "run")
    manifest = read_json(folder / "manifest.json")
    manifest["files"]["../secret"] = {"size": 1, "sha256": "0" * 64}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunFileError, match="outside the run folder"):
        load_run(folder)


# --- hostile and broken inputs ------------------------------------------------------------------------


def _damaged(tmp_path, mutate) -> os.PathLike:
    results = schema3_results()
    mutate(results)
    return write_schema3_run(tmp_path / "bad", results, manifest=False)


def test_truncated_json_is_named_as_such(tmp_path):
    folder = write_schema3_run(tmp_path / "run", manifest=False)
    text = (folder / "results.json").read_text()
    (folder / "results.json").write_text(text[: len(text) // 2])
    with pytest.raises(RunFileError, match=r"results.json .* is truncated"):
        load_run(folder)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["solvers"]["learned"]["metrics"]["mse"].__setitem__(2, "0.1"),
     r'solvers\["learned"\].metrics\["mse"\]\[2\] is "0.1", expected a number or null'),
    (lambda r: r["solvers"]["gd"]["metrics"]["mse"].pop(),
     r'solvers\["gd"\].metrics\["mse"\] has 5 values, expected 6'),
    (lambda r: r.__setitem__("solvers", []), r"solvers is \[\], expected an object"),
    (lambda r: r["solvers"]["learned"].__setitem__("seed_status", ["ok", "lost", "ok"]),
     r'seed_status\[1\] is "lost", expected "ok" or "diverged"'),
    (lambda r: r["solvers"]["learned"]["per_seed"]["metrics"]["mse"].pop(), r"has 2 entries for 3 seeds"),
    (lambda r: r["solvers"]["learned"].__setitem__("params", {"eta": [[1, 2], [3]]}), r"ragged"),
    (lambda r: r.__setitem__("primary_metric", "psnr"), r"primary_metric 'psnr' is not one of the metrics"),
    (lambda r: r["metrics"]["mse"].__setitem__("scale", "log"), r'scale is "log", expected "linear" or "db"'),
    # a precision of 999999 digits formats fine but makes a megabyte per cell (".900000000e": 900 MB)
    (lambda r: r["metrics"]["mse"].__setitem__("format", ".999999e"),
     r'metrics\["mse"\].format is ".999999e", expected a short float format spec such as ".3e"'),
    (lambda r: r["metrics"]["mse"].__setitem__("format", "{}"), r'format is "{}", expected a short float format'),
])
def test_wrong_types_name_the_entry(tmp_path, mutate, message):
    with pytest.raises(RunFileError, match=message):
        load_run(_damaged(tmp_path, mutate))


@pytest.mark.parametrize("version, message", [
    (99, r"schema_version 99 was written by a newer du-framework.*reads 2 and 3"),
    (1, r"schema_version 1 is too old"),
    ("3", r'schema_version is "3", expected an integer'),
])
def test_unknown_schema_versions_are_refused(tmp_path, version, message):
    with pytest.raises(RunFileError, match=message):
        load_run(_damaged(tmp_path, lambda r: r.__setitem__("schema_version", version)))


@pytest.mark.parametrize("spec, one", [(".3e", "1.000e+00"), (".2f", "1.00"), (".2e", "1.00e+00"),
                                        ("+9.2e", "+1.00e+00"), (".1%", "100.0%"), (".4g", "1")])
def test_the_format_specs_metrics_use_are_accepted(tmp_path, spec, one):
    run = load_run(_damaged(tmp_path, lambda r: r["metrics"]["mse"].__setitem__("format", spec)))
    assert run.metrics["mse"].format == spec and run.metrics["mse"].show(1.0) == one


def test_a_huge_listed_file_is_not_hashed(tmp_path, monkeypatch):
    import du_framework.workbench.loading.load as loading

    hashed = []
    real = loading.file_sha256
    monkeypatch.setattr(loading, "file_sha256", lambda path, *limit: hashed.append(path.name) or real(path, *limit))
    folder = write_schema3_run(tmp_path / "run")
    with open(folder / "config.json", "r+b") as handle:  # listed, not read for a compare run: a warning
        handle.truncate(MAX_JSON_BYTES + 1)  # sparse: nothing written
    run = load_run(folder)
    assert any(f"config.json is {MAX_JSON_BYTES + 1} bytes, more than the {MAX_JSON_BYTES} bytes checked; its "
               f"sha256 was not checked" in w for w in run.warnings), run.warnings
    assert "config.json" not in hashed and "results.json" in hashed
    with open(folder / "training.csv", "r+b") as handle:  # read by the loader: refused before hashing
        handle.truncate(MAX_CSV_BYTES + 1)
    hashed.clear()
    with pytest.raises(RunFileError, match=rf"training.csv .* is {MAX_CSV_BYTES + 1} bytes, more than the "
                                           rf"{MAX_CSV_BYTES} bytes this reader accepts"):
        load_run(folder)
    assert "training.csv" not in hashed


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    folder = write_schema3_run(tmp_path / "run", manifest=False)
    with open(folder / "results.json", "r+b") as handle:
        handle.truncate(MAX_JSON_BYTES + 1)  # sparse: nothing is written, nothing may be read
    with pytest.raises(RunFileError, match=rf"is {MAX_JSON_BYTES + 1} bytes, more than"):
        load_run(folder)


def test_a_malformed_training_csv_names_the_line(tmp_path):
    folder = write_schema3_run(tmp_path / "run", manifest=False)
    lines = (folder / "training.csv").read_text().splitlines()
    lines[3] = "learned,11,3,2,2,lots"
    (folder / "training.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFileError, match=r"training.csv .*line 4: loss is 'lots', expected a number"):
        load_run(folder)


@pytest.mark.parametrize("make, message", [
    (lambda p: p, r"does not exist"),
    (lambda p: (p.mkdir(), p)[1], r"not a run folder: it has no results.json"),
    (lambda p: (p.write_text("x"), p)[1], r"is not a run folder"),
])
def test_not_a_run_folder(tmp_path, make, message):
    with pytest.raises(RunFileError, match=message):
        load_run(make(tmp_path / "thing"))


def test_results_json_path_is_accepted_for_its_folder():
    assert load_run(SCHEMA2_RUN / "results.json").folder == SCHEMA2_RUN


def test_from_results_reads_a_fresh_comparison_in_memory(core_plugin):
    """What report.write_report hands over: results_dict of a comparison (NumPy values, NaN, no JSON round trip)."""
    from du_framework.workbench.compare import run_comparison
    from du_framework.workbench.config import load_config
    from du_framework.workbench.report import results_dict

    config = load_config(experiment="small", overrides=["train.depth=5", "train.steps_per_stage=2", "train.seeds=2"])
    comparison = run_comparison(config, progress=False)
    run = Run.from_results(results_dict(comparison))
    for label, result in comparison.results.items():
        for name, curve in result.metrics.items():
            np.testing.assert_array_equal(run.solvers[label].metrics[name], np.asarray(curve, float))
        assert run.solvers[label].seeds == list(result.seeds)
    learned = comparison.results["learned"]
    if learned.per_seed_metrics is not None:
        np.testing.assert_array_equal(run.solvers["learned"].per_seed_metrics["mse"], learned.per_seed_metrics["mse"])
    np.testing.assert_array_equal(run.solvers["learned"].references["eta"]["best constant step"],
                                  np.ravel(learned.references["eta"]["best constant step"]))
