"""A tuning study read back (``load_study``) and reported (``unfold report TUNE_FOLDER``): the optimisation history,
the best trial per solver against the configuration as given, optuna's parameter importance; bad input refused."""

import json
import re
import shutil

import numpy as np
import pytest

from du_framework.registry import plugin_registered

import core_plugin as core_plugin_module
from cli_helpers import one_error_line, run

pytest.importorskip("optuna")


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    """A tiny study of the core tests' experiment: 4 trials of the learned GD (no pruning), 1 of the classical."""
    out = tmp_path_factory.mktemp("study") / "tuned"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DU_PLUGINS", "")
        with plugin_registered(core_plugin_module, "core-tests"):
            assert run("tune", "--experiment", "small", "--set", "train.depth=2", "--set", "train.steps_per_stage=3",
                       "--set", "evaluation.batches=1", "--trials", "4", "--no-prune", "--seed", "5", "--out", out,
                       "--no-progress") == 0
    return out


def _edited(folder, tmp_path, edit):
    """A copy of ``folder`` whose tune.json ``edit(body)`` changed (its manifest left out: it would refuse the edit)."""
    copy = tmp_path / "edited"
    shutil.copytree(folder, copy)
    (copy / "manifest.json").unlink()
    body = json.loads((copy / "tune.json").read_text())
    edit(body)
    (copy / "tune.json").write_text(json.dumps(body))
    return copy


def test_load_study_reads_back_every_trial_the_optuna_study_holds(study_folder):
    import optuna

    from du_framework.workbench import TuningStudy, load_study

    study = load_study(study_folder)
    assert isinstance(study, TuningStudy) and study.warnings == [] and "tune.json" in study.verified
    assert list(study.searches) == ["learned", "gd"] and study.metric.name == "mse"
    stored = optuna.load_study(study_name="tune:learned", storage=f"sqlite:///{study_folder / 'tune.db'}")
    search = study.searches["learned"]
    assert [(t.number, t.state, t.value) for t in search.trials] == [
        (t.number, "complete", t.value) for t in stored.get_trials()]  # the storage itself, read independently
    assert search.baseline.number == 0 and search.baseline.params["lr"] == 0.01  # the configured rate
    assert search.best.number == stored.best_trial.number
    assert [d.key for d in search.dimensions] == ["lr", "train.optimizer", "train.log_loss"]


def test_load_run_names_a_tune_folder_as_a_study(study_folder):
    from du_framework.workbench.loading import RunFileError, load_run

    with pytest.raises(RunFileError, match=r"is a tuning study \(written by unfold tune\), not a run: read it with "
                                           r"du_framework.workbench.load_study"):
        load_run(study_folder)


def test_unfold_report_of_a_study_holds_the_best_trial_against_the_configuration_and_optunas_importance(
        study_folder, tmp_path, capsys):
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator

    report = tmp_path / "study.md"
    assert run("report", study_folder, "--out", report) == 0
    text = report.read_text()
    body = json.loads((study_folder / "tune.json").read_text())
    learned = body["solvers"]["learned"]
    base = next(t for t in learned["trials"] if t["baseline"])
    best = learned["best"]
    factor = base["metric_value"] / best["metric_value"]
    row = (f"| learned | learned-gd | learned | 4 complete | {base['metric_value']:.3e} (trial {base['number']}) | "
           f"{best['metric_value']:.3e} (trial {best['number']}) | ")
    assert row in text, text
    assert best["number"] != base["number"] and factor > 1  # this seed's search beats the configuration
    assert row + f"{factor:.3g}x lower |" in text
    assert "| gd | constant-gd | classical | 1 complete |" in text and "nothing searched (one scoring trial)" in text
    # importance: optuna's own evaluator on the study in tune.db gives the numbers the report shows
    stored = optuna.load_study(study_name="tune:learned", storage=f"sqlite:///{study_folder / 'tune.db'}")
    expected = optuna.importance.get_param_importances(stored, evaluator=PedAnovaImportanceEvaluator())
    assert "with PED-ANOVA (optuna's default importance evaluator)" in text
    for key, share in expected.items():
        assert f"| learned | {key.replace('_', chr(92) + '_')} | {share:.3f} |" in text, (key, share, text)
    assert "gd: no importance: nothing was searched" in text
    for name in ("tuned-history.png", "tuned-importance.png"):
        assert (tmp_path / "study_files" / name).stat().st_size > 0
        assert f"](study_files/{name})" in text
    assert "wrote" in capsys.readouterr().out


def test_an_html_report_of_a_study_is_one_file(study_folder, tmp_path):
    page = tmp_path / "study.html"
    assert run("report", study_folder, "--format", "html", "--out", page) == 0
    text = page.read_text()
    assert text.count("<svg") == 2 and "Tuning study: tuned" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.html"]


def test_the_improvement_is_a_factor_for_a_log_scored_metric_and_a_difference_otherwise():
    from du_framework.workbench.tuning.report import improvement
    from du_framework.workbench.tuning.stored import StudyMetric

    mse = StudyMetric("mse", "MSE", "minimize", "log10", 5)
    assert improvement(mse, 8.79e-12, 4.33e-13) == "20.3x lower"  # 8.79 / 0.433 = 20.30
    assert improvement(mse, 1e-3, 2e-3) == "2x higher" and improvement(mse, None, 1.0) == "-"
    nmse = StudyMetric("nmse_db", "NMSE (dB)", "minimize", "value", 16, ".2f", "db")
    assert improvement(nmse, -7.44, -11.27) == "3.83 dB lower"
    psnr = StudyMetric("psnr", "PSNR", "maximize", "value", 8)
    assert improvement(psnr, 30.0, 31.5) == "1.5 higher"


def test_the_history_draws_the_running_best_of_the_trials(study_folder):
    from du_framework.workbench import load_study
    from du_framework.workbench.figures.tuning import history_figure

    study = load_study(study_folder)
    fig = history_figure(study.searches, study.metric)
    try:
        line = next(line for line in fig.axes[0].get_lines() if line.get_label() == "best so far")
        trials = json.loads((study_folder / "tune.json").read_text())["solvers"]["learned"]["trials"]
        values = np.array([t["metric_value"] for t in sorted(trials, key=lambda t: t["number"])])
        running = np.minimum.accumulate(values)  # every trial complete (no pruning)
        np.testing.assert_array_equal(line.get_ydata(), np.append(running, running[-1]))
        np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3, 3])
        assert fig.axes[0].get_yscale() == "log"  # MSE is scored as log10
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


@pytest.mark.parametrize("edit, sentence", [
    (lambda body: body["solvers"]["learned"].update(trials=body["solvers"]["learned"]["trials"][:1]),
     "learned: no importance: 1 complete trial(s): importance needs at least two scored trials"),
    (lambda body: body["solvers"]["learned"].update(search_space=body["solvers"]["learned"]["search_space"][:1]),
     "learned: no importance: one setting was searched (lr): importance ranks searched settings against each other"),
])
def test_a_study_too_small_for_importance_gets_a_sentence(study_folder, tmp_path, edit, sentence, capsys):
    folder = _edited(study_folder, tmp_path, edit)
    report = tmp_path / "small.md"
    assert run("report", folder, "--out", report) == 0
    text = report.read_text()
    assert sentence in text, text
    assert "unfold: warning:" in capsys.readouterr().err  # no manifest: said, not refused


def _rewrite(folder, edit):
    body = json.loads((folder / "tune.json").read_text())
    edit(body)
    (folder / "tune.json").write_text(json.dumps(body))


def _truncate(folder):
    path = folder / "tune.json"
    path.write_text(path.read_text()[:200])


def _mkdir_stray(folder):
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing unfold wrote")


@pytest.mark.parametrize("damage, message", [
    (_mkdir_stray, r"is not a run folder: it has no results.json \(written by unfold compare\), no checkpoints/ "
                   r"\(written by unfold train\) and no tune.json \(written by unfold tune\)"),
    (_truncate, r"tune.json '.*' is truncated \(it ends early\)"),
    (lambda f: _rewrite(f, lambda body: body.update(format_version=9)),
     r"format_version 9 is not one this version reads \(1\)"),
    (lambda f: _rewrite(f, lambda body: body["solvers"]["learned"]["trials"][0].update(state="exploded")),
     r"solvers\['learned'\]\.trials\[0\]\.state is \"exploded\", expected \"complete\" or \"pruned\""),
])
def test_bad_input_is_refused_with_one_line_and_nothing_written(study_folder, tmp_path, capsys, damage, message):
    folder = tmp_path / "damaged"
    shutil.copytree(study_folder, folder)
    if damage is not _mkdir_stray:
        (folder / "manifest.json").unlink()
    damage(folder)
    report = tmp_path / "out" / "report.md"
    assert run("report", folder, "--out", report) == 2
    assert re.search(message, one_error_line(capsys.readouterr().err))
    assert not (tmp_path / "out").exists()


def test_a_changed_tune_json_is_refused_by_the_manifest(study_folder, tmp_path, capsys):
    folder = tmp_path / "changed"
    shutil.copytree(study_folder, folder)
    (folder / "tune.json").write_text((folder / "tune.json").read_text().replace('"trainable": true',
                                                                                 '"trainable": false'))
    assert run("report", folder, "--out", tmp_path / "r.md") == 2
    assert "tune.json was changed after the run was written" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r.md").exists()


@pytest.mark.parametrize("args, message", [
    (["--metric", "nmse_db"], "--metric nmse_db: the study 'tuned' scored its trials on 'mse' only"),
    (["SELF"], "unfold report takes one tuning study at a time, without runs (got 2 folders"),
])
def test_a_study_report_refuses_what_it_cannot_show(study_folder, tmp_path, capsys, args, message):
    args = [str(study_folder) if a == "SELF" else a for a in args]
    assert run("report", study_folder, *args, "--out", tmp_path / "r.md") == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r.md").exists()
