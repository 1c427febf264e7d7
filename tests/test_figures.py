"""du_framework.workbench.figures: file formats, greyscale-distinct styles, ticks, axis labels, reference lines, styles."""

import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from du_framework.workbench import figures
from du_framework.errors import ConfigError
from du_framework.workbench.loading import Run, RunFileError, load_run

from run_fixtures import DEPTH, SCHEMA2_RUN, per_seed_mse, schema3_results, write_schema3_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run(tmp_path):
    return load_run(write_schema3_run(tmp_path / "s3"))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def png_size(path) -> tuple[int, int]:
    """A PNG's width and height in pixels."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def png_dpi(data: bytes) -> float:
    """The resolution a PNG declares in its pHYs chunk (pixels per metre -> dots per inch)."""
    position = 8
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        if kind == b"pHYs":
            x, _, unit = struct.unpack(">IIB", data[position + 8:position + 17])
            assert unit == 1, "unit: metre"
            return x * 0.0254
        position += 12 + length
    raise AssertionError("no pHYs chunk")


# --- formats ------------------------------------------------------------------------------------------


def test_the_suffix_chooses_a_valid_file_format(run, tmp_path):
    pdf = figures.plot_curves(run, tmp_path / "c.pdf")
    svg = figures.plot_curves(run, tmp_path / "c.svg")
    png = figures.plot_curves(run, tmp_path / "c.png")
    assert pdf.read_bytes().startswith(b"%PDF-") and pdf.read_bytes().rstrip().endswith(b"%%EOF")
    root = ElementTree.fromstring(svg.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and png_dpi(data) >= 199.9
    with pytest.raises(ConfigError, match=r"use .pdf, .svg or .png"):
        figures.plot_curves(run, tmp_path / "c.jpg")


def test_a_backend_the_user_chose_survives_drawing_and_saving(run, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.switch_backend("svg")  # as a notebook's inline or an interactive backend would be, chosen before drawing
    try:
        fig = figures.curves_figure(run)
        png = figures.save_figure(fig, tmp_path / "c.png")
        figures.plot_losses(run, tmp_path / "l.pdf")
        assert matplotlib.get_backend() == "svg"
        assert png.read_bytes().startswith(PNG_SIGNATURE) and (tmp_path / "l.pdf").read_bytes().startswith(b"%PDF-")
    finally:
        plt.switch_backend(before)


def test_pyplot_imported_by_the_library_gets_the_agg_backend():
    code = ("import sys, matplotlib; from du_framework.workbench import figures; figures.pyplot(); "
            "assert matplotlib.get_backend().lower() == 'agg', matplotlib.get_backend()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPLBACKEND": "svg"})
    assert done.returncode == 0, done.stderr


def test_svg_output_is_reproducible(run, tmp_path):
    first = figures.plot_curves(run, tmp_path / "a.svg").read_bytes()
    second = figures.plot_curves(run, tmp_path / "b.svg").read_bytes()
    assert first == second


def test_write_figures_keeps_the_run_folder_names_and_adds_vector_files_and_losses(run, tmp_path):
    written = figures.write_figures(run, tmp_path / "out", formats=("png", "pdf", "svg"))
    assert sorted(written) == sorted(f"{stem}.{kind}" for stem in ("mse", "params", "losses")
                                     for kind in ("png", "pdf", "svg"))
    assert all(path.is_file() and path.stat().st_size > 1000 for path in written.values())
    assert written["params.pdf"].read_bytes().startswith(b"%PDF-")
    schema2 = figures.write_figures(load_run(SCHEMA2_RUN), tmp_path / "old")
    assert sorted(schema2) == ["mse.png", "params.png"], "no loss history in a schema-2 run"
    with pytest.raises(ConfigError, match="choose among pdf, svg, png"):
        figures.write_figures(run, tmp_path / "x", formats=("eps",))


def test_write_figures_reports_a_figure_that_cannot_be_drawn_through_warn(run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("no room for the legend")

    monkeypatch.setattr(figures, "params_figure", broken)
    messages = []
    written = figures.write_figures(run, tmp_path / "out", warn=messages.append)
    assert "mse.png" in written and "params.png" not in written and "losses.png" in written
    assert messages == ["params figure could not be drawn (ValueError: no room for the legend); "
                        "the results files are complete"]
    with pytest.raises(ValueError, match="no room"):
        figures.write_figures(run, tmp_path / "again")


# --- curves -------------------------------------------------------------------------------------------


def test_learned_and_classical_solvers_differ_in_line_style_and_marker(tmp_path):
    run = load_run(SCHEMA2_RUN)
    ax = figures.curves_figure(run).axes[0]
    lines = lines_by_label(ax)
    learned, classical = lines["learned"], lines["gd"]
    assert learned.get_linestyle() != classical.get_linestyle()
    assert learned.get_marker() != classical.get_marker()
    assert learned.get_linestyle() == "-" and classical.get_linestyle() in ("--", ":", "-.")


def test_several_solvers_of_a_kind_each_get_their_own_marker_and_overlaps_stay_visible():
    styles = figures.series_styles([True, True, False, False], 50)
    assert len({s["marker"] for s in styles}) == 4
    assert len({str(s["linestyle"]) for s in styles if s["linestyle"] != "-"}) == 2
    widths = [s["linewidth"] for s in styles]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1], "earlier curves thicker, below"
    assert [s["zorder"] for s in styles] == sorted(s["zorder"] for s in styles)
    assert len({s["markevery"][0] for s in styles}) == 4, "markers at staggered iterations"


def test_iteration_ticks_are_integers_from_one(run):
    ax = figures.curves_figure(run).axes[0]
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks[0] == 1 and all(float(t).is_integer() for t in ticks) and max(ticks) <= DEPTH
    assert ax.get_xlabel() == "iteration $t$"
    for last in (1, 2, 6, 7, 12, 50, 64, 100, 1000, 4096):
        ticks = figures.iteration_ticks(last)
        assert ticks[0] == 1 and ticks == sorted(set(ticks)) and ticks[-1] <= last and len(ticks) <= 8


def test_db_metric_axis_names_its_unit_and_never_mse(run):
    ax = figures.curves_figure(run, metric="nmse_db").axes[0]
    assert ax.get_ylabel() == "NMSE (dB)" and "MSE" not in ax.get_ylabel().replace("NMSE", "")
    assert ax.get_yscale() == "linear"
    ax = figures.curves_figure(run).axes[0]
    assert ax.get_ylabel() == "MSE" and ax.get_yscale() == "log"


def test_the_float32_floor_of_a_db_metric_lies_inside_the_y_limits(run):
    ax = figures.curves_figure(run, metric="nmse_db").axes[0]
    floor = [line for line in ax.get_lines() if "float32" in line.get_label()]
    assert len(floor) == 1
    level = floor[0].get_ydata()[0]
    assert level == pytest.approx(20 * np.log10(np.finfo(np.float32).eps))
    low, high = ax.get_ylim()
    assert low < level < high


def test_a_recorded_floor_is_drawn_even_far_below_the_curves(tmp_path):
    results = schema3_results()
    results["metrics"]["mse"]["floor"] = 1e-30
    ax = figures.curves_figure(Run.from_results(results)).axes[0]
    low, high = ax.get_ylim()
    assert low < 1e-30 < high


def test_seed_bands_span_the_minimum_and_maximum_of_the_seeds_that_did_not_diverge(run):
    ax = figures.curves_figure(run).axes[0]
    (band,) = ax.collections
    vertices = band.get_paths()[0].vertices
    ok = per_seed_mse()[[0, 2]]
    lows, highs = np.minimum(ok[0], ok[1]), np.maximum(ok[0], ok[1])
    for t in range(1, DEPTH + 1):
        ys = vertices[np.isclose(vertices[:, 0], t), 1]
        assert ys.min() == pytest.approx(lows[t - 1]) and ys.max() == pytest.approx(highs[t - 1])
    assert "[1 of 3 seeds diverged]" in lines_by_label(ax)["learned [1 of 3 seeds diverged]"].get_label()


def test_overlay_prefixes_each_solver_with_its_run(run):
    other = load_run(SCHEMA2_RUN)
    ax = figures.curves_figure([run, other], solvers="gd", metric="mse").axes[0]  # two problems: named metric
    assert sorted(lines_by_label(ax)) == ["s3: gd", "schema2-run: gd"]
    with pytest.raises(ConfigError, match=r"no solver 'gdd'.*did you mean 'gd'"):
        figures.curves_figure([run, other], solvers=["gdd"], metric="mse")


def test_user_text_is_drawn_literally(tmp_path):
    results = schema3_results()
    results["solvers"]["$x$"] = results["solvers"].pop("gd")
    results["metrics"]["mse"]["label"] = "cost in $"
    ax = figures.curves_figure(Run.from_results(results)).axes[0]
    assert r"\$x\$" in lines_by_label(ax) and ax.get_ylabel() == r"cost in \$"


def test_a_run_without_curves_is_refused_by_name():
    run = Run(label="trained", folder=None, kind="train", schema_version=None, config={}, problem={}, metrics={},
              primary_metric=None, evaluation={}, solvers={}, missing=["no evaluation curves"])
    with pytest.raises(RunFileError, match="'trained' holds no evaluation curves"):
        figures.curves_figure(run)


# --- parameters and losses ----------------------------------------------------------------------------


def test_params_slots_count_from_one_with_math_names_and_reference_lines_inside(run):
    ax = figures.params_figure(run).axes[0]
    low, high = ax.get_xlim()
    assert [t for t in ax.get_xticks() if low <= t <= high] == [1, 2]
    assert ax.get_ylabel() == r"$\eta_{k}$"
    reference = lines_by_label(ax)["best constant step"]
    assert reference.get_ydata()[0] == 0.5 and ax.get_ylim()[0] < 0.5 < ax.get_ylim()[1]
    np.testing.assert_array_equal(lines_by_label(ax)["learned"].get_ydata(), [0.11, 0.31])
    (band,) = ax.collections  # seeds 11 and 13 (12 diverged, its 9.0 left out)
    assert band.get_paths()[0].vertices[:, 1].max() == pytest.approx(0.31)


def test_math_names():
    assert figures.math_name("eta") == r"$\eta_{k}$" and figures.math_name("lam") == r"$\lambda_{k}$"
    assert figures.math_name("W") == "$W_{k}$" and figures.math_name("step") == r"$\mathrm{step}_{k}$"
    assert figures.math_name("alpha2") == r"$\alpha_{2,k}$"
    assert figures.math_name("a.b$c") == r"a.b\$c", "not a simple name: literal text"


def test_losses_every_seed_from_step_one(run):
    ax = figures.losses_figure(run).axes[0]
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) == 6]
    assert len(curves) == 3 and ax.get_yscale() == "log", "positive losses; the NaN after a divergence is a gap"
    diverged = next(line for line in curves if np.isnan(line.get_ydata()).any())
    assert np.isnan(diverged.get_ydata()[4:]).all() and np.isfinite(diverged.get_ydata()[:4]).all()
    low, high = ax.get_xlim()
    assert [t for t in ax.get_xticks() if low <= t <= high][0] == 1
    (boundaries,) = ax.collections  # stages 1, 1, 2, 2, 3, 3: between steps 2 and 3, and 4 and 5
    assert [segment[:, 0].tolist() for segment in boundaries.get_segments()] == [[2.5, 2.5], [4.5, 4.5]]
    assert [segment[:, 1].tolist() for segment in boundaries.get_segments()] == [[0.0, 1.0]] * 2
    assert boundaries.get_transform() == ax.get_xaxis_transform(), "x in steps, y the whole height of the axes"
    with pytest.raises(RunFileError, match="no loss history saved"):
        figures.losses_figure(load_run(SCHEMA2_RUN))


# --- styles and imports -------------------------------------------------------------------------------


def test_a_style_name_or_an_rc_file_changes_the_figure(run, tmp_path):
    plain = figures.curves_figure(run).axes[0].get_facecolor()
    styled = figures.curves_figure(run, style="ggplot").axes[0].get_facecolor()
    assert plain != styled
    rc = tmp_path / "paper.mplstyle"
    rc.write_text("axes.facecolor: 0.5\nfont.size: 7\n")
    ax = figures.curves_figure(run, style=rc).axes[0]
    assert ax.get_facecolor()[:3] == pytest.approx((0.5, 0.5, 0.5))
    assert ax.xaxis.label.get_fontsize() == 7
    with pytest.raises(ConfigError, match=r"style 'ggplt' is neither.*did you mean 'ggplot'"):
        figures.plot_curves(run, tmp_path / "x.png", style="ggplt")
    empty = tmp_path / "empty.mplstyle"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="sets no rcParams"):
        figures.plot_curves(run, tmp_path / "x.png", style=empty)


def test_matplotlib_is_imported_only_to_draw():
    code = ("import sys, du_framework, du_framework.workbench.loading, du_framework.workbench.figures, du_framework.workbench.publish, "
            "du_framework.cli.views; assert 'matplotlib' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_curves_figure_is_named_after_the_metric_it_plots(run, tmp_path):
    other = next(name for name in run.metrics if name != "mse")
    written = figures.write_figures(run, tmp_path / "out", metric=other)
    assert f"{other}.png" in written and "mse.png" not in written
    assert figures.curves_stem("ber") == "ber" and figures.curves_stem("params") == "curves_params"
    assert figures.curves_stem("a/b c") == "a_b_c"


# --- one look per solver, paper preset, runs of different problems -----------------------------------


def _reordered(classical_first: bool = True) -> dict:
    """The schema-3 results with the classical solver listed before the learned one."""
    results = schema3_results()
    if classical_first:
        results["solvers"] = {"gd": results["solvers"]["gd"], "learned": results["solvers"]["learned"]}
    return results


def _look(line) -> tuple:
    from matplotlib.colors import to_hex

    return to_hex(line.get_color()), line.get_marker()


def test_a_solver_has_one_colour_and_marker_in_every_figure_of_a_run():
    run = Run.from_results(_reordered())  # gd (classical) first: params and losses draw only "learned"
    curves = lines_by_label(figures.curves_figure(run).axes[0])
    params = lines_by_label(figures.params_figure(run).axes[0])
    only = lines_by_label(figures.curves_figure(run, solvers="learned").axes[0])
    learned = next(label for label in curves if label.startswith("learned"))
    assert _look(params["learned"]) == _look(curves[learned]) == _look(only[learned])
    assert _look(curves["gd"]) != _look(curves[learned])


def test_a_solver_keeps_its_look_across_the_runs_of_an_overlay_and_runs_differ_in_line_style(run):
    other = Run.from_results(_reordered(), label="again")
    lines = lines_by_label(figures.curves_figure([run, other], solvers="gd").axes[0])
    first, second = lines["s3: gd"], lines["again: gd"]
    assert _look(first) == _look(second), "one colour and marker per solver label"
    assert first.get_linestyle() != second.get_linestyle(), "the runs told apart by line style"
    alone = lines_by_label(figures.curves_figure(run).axes[0])["gd"]
    assert _look(alone) == _look(first)


def test_the_paper_preset_is_one_column_wide_without_titles(run, tmp_path):
    fig = figures.curves_figure(run, style="paper")
    assert fig.get_size_inches()[0] == pytest.approx(3.5) and fig.axes[0].get_title() == ""
    assert all(ax.get_title() == "" for ax in figures.params_figure(run, style="paper").axes)
    assert figures.curves_figure(run).axes[0].get_title() != "", "titles stay by default"
    figures.plot_curves(run, tmp_path / "paper.png", style="paper")
    assert png_size(tmp_path / "paper.png")[0] <= 3.5 * 200, "one column wide at 200 dpi, as saved"
    written = figures.write_figures(run, tmp_path / "notitle", title=False)
    assert sorted(written) == ["losses.png", "mse.png", "params.png"]


def test_a_per_iteration_parameter_is_drawn_against_the_iteration():
    results = schema3_results()
    results["solvers"]["learned"]["params"]["theta"] = [float(t) for t in range(1, DEPTH + 1)]  # one per iteration
    axes = {ax.get_ylabel(): ax for ax in figures.params_figure(Run.from_results(results)).axes}
    assert axes[r"$\theta_{k}$".replace("k", "t")].get_xlabel() == "iteration $t$"
    periodic = axes[r"$\eta_{k}$"].get_xlabel()
    assert periodic.startswith("slot $k$") and "mod" in periodic, "a period of 2 keeps the slot convention"


def _other_problem() -> Run:
    results = schema3_results()
    results["problem"] = {"name": "other"}
    results["config"]["problem"] = {"name": "other"}
    results["primary_metric"] = "nmse_db"
    return Run.from_results(results, label="elsewhere")


def test_runs_of_different_problems_are_refused_in_one_figure_unless_a_metric_is_named(run):
    with pytest.raises(ConfigError) as refused:
        figures.curves_figure([run, _other_problem()])
    message = str(refused.value)
    assert "'s3'" in message and "'elsewhere'" in message and "toy" in message and "other" in message
    assert "mse" in message and "nmse_db" in message and "--metric" in message
    ax = figures.curves_figure([run, _other_problem()], metric="mse").axes[0]
    assert ax.get_title().startswith("toy, other: MSE")
