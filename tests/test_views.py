"""``unfold plot`` and ``unfold report`` on saved runs (schema 2 as written, schema 3, training runs),
hostile inputs with exit status 2, and docs/publishing.md's examples."""

import html.parser
import importlib.metadata
import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import one_error_line, run
from run_fixtures import SCHEMA2_RUN, copy_run, per_seed_mse, read_json, train_run, write_schema3_run

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def schema3(tmp_path):
    return write_schema3_run(tmp_path / "s3")


# --- unfold plot --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, magic", [(".pdf", b"%PDF-"), (".png", b"\x89PNG\r\n\x1a\n")])
def test_plot_redraws_a_schema2_run(tmp_path, capsys, suffix, magic):
    out = tmp_path / f"curves{suffix}"
    assert run("plot", SCHEMA2_RUN, "--out", out) == 0
    assert out.read_bytes().startswith(magic) and f"wrote {out}" in capsys.readouterr().out


def test_plot_overlays_runs_as_svg_with_a_chosen_metric_solvers_and_style(schema3, tmp_path):
    out = tmp_path / "overlay.svg"
    style = tmp_path / "paper.mplstyle"
    style.write_text("font.size: 8\n")
    assert run("plot", schema3, SCHEMA2_RUN, "--metric", "nmse_db", "--solvers", "learned,gd", "--style", style,
               "--out", out, "--no-title") == 0
    assert ElementTree.parse(out).getroot().tag.endswith("svg")


@pytest.mark.parametrize("what", ["params", "losses"])
def test_plot_params_and_losses(schema3, tmp_path, what):
    out = tmp_path / f"{what}.pdf"
    assert run("plot", schema3, "--what", what, "--out", out) == 0
    assert out.read_bytes().startswith(b"%PDF-")


def test_plot_default_file_is_named_for_what_it_draws(schema3, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("plot", schema3, "--what", "params") == 0
    assert (tmp_path / "params.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_of_a_training_run_draws_its_parameters_and_says_what_curves_need(tmp_path, capsys):
    folder = train_run()
    assert run("plot", folder, "--what", "params", "--out", tmp_path / "p.png") == 0
    assert "raw (unconstrained) form" in capsys.readouterr().err
    assert run("plot", folder, "--out", tmp_path / "c.png") == 2
    line = one_error_line(capsys.readouterr().err)
    assert "holds no evaluation curves" in line and "unfold compare --checkpoints" in line
    assert not (tmp_path / "c.png").exists()


# --- unfold report ------------------------------------------------------------------------------------


def expected_cell(t: int) -> str:
    """The learned solver's cell at iteration t, from the per-seed curves (seed 12 diverged: left out)."""
    ok = per_seed_mse()[[0, 2], t - 1]
    return f"{np.median(ok):.3e} [{ok.min():.2e}, {ok.max():.2e}]"


def test_report_markdown_has_spread_cells_figures_beside_it_config_and_provenance(schema3, tmp_path):
    out = tmp_path / "paper" / "report.md"
    assert run("report", schema3, "--out", out) == 0
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| learned | learned |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "3 (1 diverged)"
    assert cells[3:3 + 4] == [expected_cell(t) for t in (1, 5, 6)] + ["1.000e-02"]
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert figures and all((out.parent / path).is_file() for path in figures)
    assert {Path(p).name for p in figures} == {"s3-mse.png", "s3-params.png", "s3-losses.png"}
    assert "```toml\n[problem]\nname = \"toy\"" in text and "## Run s3" in text


def test_report_html_is_one_self_contained_file(schema3, tmp_path):
    out = tmp_path / "r.html"
    assert run("report", schema3, SCHEMA2_RUN, "--format", "html", "--out", out) == 0
    text = out.read_text()
    assert not (tmp_path / "r_files").exists(), "nothing beside it"

    class Refs(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.references, self.svgs = [], 0

        def handle_starttag(self, tag, attrs):
            self.svgs += tag == "svg"
            self.references += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]

    parser = Refs()
    parser.feed(text)
    assert parser.references == [] and parser.svgs >= 5  # overlay, 2 x curves, 2 x params, losses
    assert "Side by side" in text and "train.seeds" in text, "the configuration keys that differ"
    assert html_escape_free(text, expected_cell(5))


def html_escape_free(text: str, cell: str) -> bool:
    return f"<td>{cell}</td>" in text


def test_report_latex_refers_to_pdf_figures_beside_it(schema3, tmp_path):
    out = tmp_path / "r.tex"
    assert run("report", schema3, "--out", out) == 0
    text = out.read_text()
    assert text.startswith("\\documentclass") and text.rstrip().endswith("\\end{document}")
    included = re.findall(r"\\includegraphics\[[^]]*\]\{([^}]+)\}", text)
    assert included and all((tmp_path / path).read_bytes().startswith(b"%PDF-") for path in included)
    assert expected_cell(1) in text and "seed\\_status" not in text
    assert text.count("\\begin{tabular}") == text.count("\\end{tabular}")


def test_report_of_a_schema2_run_and_a_training_run_says_what_is_missing(tmp_path, capsys):
    out = tmp_path / "r.md"
    assert run("report", SCHEMA2_RUN, train_run(), "--out", out) == 0
    text = out.read_text()
    assert "no loss history" in text and "unfold compare --checkpoints" in text
    raw = read_json(SCHEMA2_RUN / "results.json")
    assert f"{raw['solvers']['gd']['metrics']['mse'][4]:.3e}" in text
    assert "## Checkpoints" in text or "### Checkpoints" in text


# --- runs of different problems ------------------------------------------------------------------------


def write_other_problem(folder: Path) -> Path:
    """A run of another problem ("other", primary metric nmse_db) with other solvers and execution settings."""
    from run_fixtures import schema3_results

    results = schema3_results()
    results["problem"] = {"name": "other", "dim": 4}
    results["primary_metric"] = "nmse_db"
    config = results["config"]
    config["problem"] = {"name": "other", "p": 0.1}
    config["train"]["chunk_size"] = 8  # how the run executes: not a difference that matters
    config["train"]["unroll"] = True
    config["solvers"] = [{"name": "learned-gd", "label": "learned", "period": 4},
                         {"name": "ista", "label": "ista", "lam": 0.1, "lr": 0.5, "tol": 1.0}]
    results["solvers"]["ista"] = results["solvers"].pop("gd")
    return write_schema3_run(folder, results)


def test_plot_of_runs_of_different_problems_exits_2_naming_both(schema3, tmp_path, capsys):
    other = write_other_problem(tmp_path / "elsewhere")
    out = tmp_path / "overlay.png"
    assert run("plot", schema3, other, "--out", out) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'s3' is toy (primary metric mse)" in line and "'elsewhere' is other (primary metric nmse_db)" in line
    assert "--metric" in line and not out.exists()
    assert run("plot", schema3, other, "--metric", "nmse_db", "--out", out) == 0, "a named metric overlays them"


def test_report_shows_each_run_in_its_primary_metric_and_overlays_only_runs_of_one_problem(schema3, tmp_path):
    other = write_other_problem(tmp_path / "elsewhere")
    twin = write_schema3_run(tmp_path / "twin")
    out = tmp_path / "r.md"
    assert run("report", schema3, other, twin, "--out", out) == 0
    text = out.read_text()
    side = text.split("## Run s3")[0]
    assert "\n| s3 | learned |" in side and "\n| twin | learned |" in side and "\n| elsewhere |" not in side
    assert re.search(r"Not side by side.*elsewhere \(other, NMSE\)", side)
    assert [Path(p).name for p in re.findall(r"\(([^)]*overlay[^)]*)\)", side)] == ["overlay-mse.png"]
    section = text.split("## Run elsewhere")[1].split("## Run twin")[0]
    assert "### NMSE (lower is better)" in section and "### MSE" not in section


def test_the_keys_that_differ_are_those_that_change_the_results(schema3, tmp_path):
    from du_framework.workbench.loading import load_run
    from du_framework.workbench.publish import config_differences

    runs = [load_run(schema3), load_run(write_other_problem(tmp_path / "elsewhere"))]
    header, rows = config_differences(runs)
    keys = {row[0]: row[1:] for row in rows}
    assert header == ["key", "s3", "elsewhere"]
    assert keys["problem.name"] == ['"toy"', '"other"'] and "problem.p" in keys
    assert "train.chunk_size" not in keys and "train.unroll" not in keys, "execution settings are left out"
    assert keys["solvers"] == ["learned, gd", "learned, ista"], "solvers of one run only: one row, not their options"
    assert not any(key.startswith(("solvers.gd.", "solvers.ista.")) for key in keys)
    assert keys["solvers.learned.period"] == ["2", "4"]
    assert len(rows) == 5, rows


def test_a_difference_shared_by_several_solvers_is_one_row(schema3, tmp_path):
    from du_framework.workbench.loading import load_run
    from du_framework.workbench.publish import config_differences
    from run_fixtures import schema3_results

    results = schema3_results()
    for entry in results["config"]["solvers"]:
        entry["lr"] = 0.5
    runs = [load_run(schema3), load_run(write_schema3_run(tmp_path / "lr", results))]
    _, rows = config_differences(runs)
    assert rows == [["solvers.*.lr", "(absent)", "0.5"]]


# --- refused inputs, exit status 2 ----------------------------------------------------------------------


def _truncate(folder):
    text = (folder / "results.json").read_text()
    (folder / "results.json").write_text(text[:200])


def _wrong_type(folder):
    data = read_json(folder / "results.json")
    data["solvers"]["gd"]["metrics"]["mse"] = "fast"
    (folder / "results.json").write_text(json.dumps(data))


def _schema99(folder):
    data = read_json(folder / "results.json")
    data["schema_version"] = 99
    (folder / "results.json").write_text(json.dumps(data))


def _huge(folder):
    from du_framework.workbench.loading import MAX_JSON_BYTES

    with open(folder / "results.json", "r+b") as handle:
        handle.truncate(MAX_JSON_BYTES + 10)


@pytest.mark.parametrize("command", ["plot", "report"])
@pytest.mark.parametrize("damage, message", [
    (_truncate, "is truncated"),
    (_wrong_type, 'metrics["mse"] is "fast", expected a list'),
    (_schema99, "schema_version 99 was written by a newer du-framework"),
    (_huge, "more than the 268435456 bytes this reader accepts"),
])
def test_damaged_runs_are_refused_with_one_line_and_exit_2(tmp_path, capsys, command, damage, message):
    folder = write_schema3_run(tmp_path / "run", manifest=False)
    damage(folder)
    assert run(command, folder, "--out", tmp_path / ("x.png" if command == "plot" else "x.md")) == 2
    assert message in one_error_line(capsys.readouterr().err)


def test_a_tampered_run_is_refused_unless_no_verify(tmp_path, capsys):
    folder = copy_run(SCHEMA2_RUN, tmp_path / "run")
    data = read_json(folder / "results.json")
    data["solvers"]["gd"]["metrics"]["mse"][0] = 0.0
    (folder / "results.json").write_text(json.dumps(data))
    assert run("plot", folder, "--out", tmp_path / "x.png") == 2
    assert "--no-verify" in one_error_line(capsys.readouterr().err)
    assert run("plot", folder, "--out", tmp_path / "x.png", "--no-verify") == 0
    assert "unfold: warning:" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--metric", "psnr"], "has no metric 'psnr'"),
    (["--solvers", "dugd"], "no solver 'dugd'"),
    (["--style", "no-such-style"], "neither a matplotlib style nor a file"),
    (["--out", "figure.jpg"], "use .pdf, .svg or .png"),
])
def test_plot_refuses_bad_options(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert run("plot", SCHEMA2_RUN, *args) == 2
    assert message in one_error_line(capsys.readouterr().err)


def test_writing_over_a_file_of_an_input_run_is_refused(tmp_path, capsys):
    folder = write_schema3_run(tmp_path / "run")
    (folder / "mse.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    from du_framework.workbench.runs import write_manifest

    write_manifest(folder, {"status": "complete"})
    assert run("plot", folder, "--out", folder / "mse.png") == 2
    assert "is a file of the run" in one_error_line(capsys.readouterr().err)
    assert (folder / "mse.png").read_bytes() == b"\x89PNG\r\n\x1a\n"


def test_report_refuses_an_unknown_suffix(schema3, tmp_path, capsys):
    assert run("report", schema3, "--out", tmp_path / "r.docx") == 2
    assert "give --format markdown|latex|html" in one_error_line(capsys.readouterr().err)


# --- docs/publishing.md -------------------------------------------------------------------------------


def test_publishing_page_examples_execute(tmp_path, monkeypatch):
    if "du-gd-ridge" not in {ep.name for ep in importlib.metadata.entry_points(group="du_framework")}:
        pytest.skip("docs/publishing.md runs the reference experiment: plugin du-gd-ridge is not installed")
    blocks = re.findall(r"```python run\n(.*?)```", (DOCS / "publishing.md").read_text(), re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for code in blocks:
        exec(compile(code, "docs/publishing.md", "exec"), namespace)
    assert (tmp_path / "nmse.pdf").read_bytes().startswith(b"%PDF-")


def test_publishing_page_is_in_the_site_navigation():
    assert "publishing.md" in (DOCS.parent / "mkdocs.yml").read_text()
