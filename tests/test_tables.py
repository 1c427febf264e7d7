"""The docs' tables (tools/doctables/, tools/tables.py) on the core test plugin: generate, check, refuse."""

import contextlib
import importlib.util
import io
import json
import math
import re
import sys
from pathlib import Path

import pytest

from core_plugin import SMALL_TOML, core_plugin  # noqa: F401 - the fixture
from du_framework.registry import plugin_registered

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))  # the maintainer's modules, not installed
import doctables as tables  # noqa: E402
PAGE = "# A page\n\nProse before.\n\n<!-- table: small -->\n<!-- /table -->\n\nProse after.\n"
# Three training seeds: the learned row shows median [min, max].
TABLE_TOML = SMALL_TOML.replace("batch_size = 16", "batch_size = 16\nseeds = 3")


def _tool():
    spec = importlib.util.spec_from_file_location("tables_tool", ROOT / "tools" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _perturb_gd_cell(text: str) -> str:
    """``text`` with the page's gd cell at t=5 doubled (3.01 dB: out of the 1 dB tolerance)."""
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("| gd |"))
    cells = lines[row].split(" | ")  # "| gd", t=1, t=5, t=6, "- |"
    cells[2] = f"{2 * float(cells[2]):.3e}"
    lines[row] = " | ".join(cells)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """On a small table of the core plugin: ``tools/tables.py generate``, then ``check`` (a rerun) with one
    page cell perturbed; the folder, exit codes, the check's output and the rerun's record."""
    import core_plugin
    from du_framework.workbench.loading import load_run

    folder = tmp_path_factory.mktemp("tables")
    (folder / "tables").mkdir()
    (folder / "tables" / "small.toml").write_text(TABLE_TOML)
    (folder / "page.md").write_text(PAGE)
    tool = _tool()
    common = ["--tables-dir", str(folder / "tables"), "--pages", str(folder / "page.md"), "--runs", str(folder / "runs")]
    with pytest.MonkeyPatch.context() as patch, plugin_registered(core_plugin, "core-tests"):
        patch.setenv("DU_PLUGINS", "")
        generate = tool.main(["generate", *common])
        page = (folder / "page.md").read_text()
        (folder / "page.md").write_text(_perturb_gd_cell(page))
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            check = tool.main(["check", *common])
        (folder / "page.md").write_text(page)
    rerun = tables.table_from_run(load_run(folder / "runs" / "check" / "small"), "small", config="small.toml",
                                  command="rerun")
    return {"folder": folder, "generate": generate, "check": check, "check_output": output.getvalue(),
            "rerun": rerun, "common": common, "tool": tool}


def _record(generated):
    return tables.load_table(generated["folder"] / "tables" / "small.json")


def test_generate_writes_the_table_between_the_markers_from_the_run(generated):
    folder = generated["folder"]
    assert generated["generate"] == 0
    text = (folder / "page.md").read_text()
    assert text.startswith("# A page\n\nProse before.\n\n<!-- table: small -->\n")
    assert text.endswith("<!-- /table -->\n\nProse after.\n")
    # Every cell against results.json of the run, read with the json module alone.
    results = json.loads((folder / "runs" / "small" / "results.json").read_text())
    gd = results["solvers"]["gd"]["metrics"]["mse"]
    assert f"| gd | {gd[0]:.3e} | {gd[4]:.3e} | {gd[5]:.3e} | - |" in text
    learned = results["solvers"]["learned"]
    assert learned["seeds"] == [1, 2, 3]
    curves = learned["per_seed"]["metrics"]["mse"]
    low, high = min(c[5] for c in curves), max(c[5] for c in curves)
    middle = sorted(c[5] for c in curves)[1]
    assert f"{middle:.3e} [{low:.2e}, {high:.2e}]" in text
    assert "median [min, max] over training seeds 1-3" in text


def test_the_record_holds_the_environment_and_command(generated):
    import jax

    record = _record(generated)
    env = record.environment
    assert env["jax"] == jax.__version__ and env["backend"] == "cpu" and env["cpu_count"] >= 1
    assert env["du_framework"] and env["cpu"] and re.match(r"\d{4}-\d\d-\d\d", env["date"])
    assert record.command.startswith("unfold compare --config ") and record.command.count("small.toml") == 1
    assert record.iterations == [1, 5, 6] and record.depth == 6
    page = (generated["folder"] / "page.md").read_text()
    assert f"jax {jax.__version__}" in page and "make check-tables" in page and "within 1 dB" in page


def test_a_rerun_passes_the_check(generated):
    folder = generated["folder"]
    report = tables.check(_record(generated), generated["rerun"], [folder / "page.md"])
    assert report.ok, [d.describe() for d in report.failures] + report.problems
    # per metric, 2 rows x 3 iterations + the learned row's min and max: the record holds every
    # metric (mse, nmse_db), the page shows one.
    assert len(report.deviations) == (len(_record(generated).metrics) + 1) * 12
    assert report.largest().size < 0.5


def test_check_script_exits_1_naming_a_perturbed_page_cell_and_the_tolerance(generated):
    assert generated["check"] == 1
    out = generated["check_output"]
    failures = [line for line in out.splitlines() if line.startswith("OUT OF TOLERANCE")]
    assert len(failures) == 1, out
    assert "page.md: table 'small', row 'gd', t=5" in failures[0] and "a factor 1.26 (1 dB)" in failures[0]
    assert re.search(r"off by 3\.0\d dB", failures[0]), failures[0]
    assert out.splitlines()[-1].startswith("check-tables: ") and "1 out of tolerance, 0 missing" in out


def test_a_perturbed_record_value_or_spread_bound_fails_naming_it(generated):
    record = _record(generated)
    learned = record.solver("learned")
    learned.curves["mse"]["low"][5] *= 1.3  # 1.14 dB
    report = tables.compare_records(record, generated["rerun"], "small.json")
    assert [(d.row, d.t, d.part) for d in report.failures] == [("learned", 6, "low")]
    assert "t=6 (min over seeds)" in report.failures[0].describe()
    assert math.isclose(report.failures[0].size, 10 * math.log10(1.3), rel_tol=1e-2)


def test_a_row_the_fresh_run_lacks_is_reported(generated):
    record = _record(generated)
    record.solvers.append(tables.SolverRow("extra", "constant-gd", {}, False, [], [], record.solver("gd").curves))
    report = tables.compare_records(record, generated["rerun"], "small.json")
    assert not report.ok and any("'extra'" in line for line in report.problems)


def test_a_fresh_run_with_a_newly_diverged_seed_or_a_shorter_depth_is_reported(generated):
    import copy

    record = _record(generated)
    fresh = copy.deepcopy(generated["rerun"])
    learned = fresh.solver("learned")
    assert learned.seed_status == ["ok", "ok", "ok"] and record.solver("learned").ok_seeds == 3
    learned.seed_status = ["ok", "diverged", "diverged"]  # one seed left: no spread in the fresh run
    for parts in learned.curves.values():
        parts["low"] = parts["high"] = None
    report = tables.compare_records(record, fresh, "small.json")
    assert not report.ok
    assert "small.json: table 'small' row 'learned': training seed 2 is 'diverged' in the fresh run, 'ok' in the " \
           "committed one" in report.problems
    assert any(line.startswith("small.json: table 'small' row 'learned' (min over seeds), mse: the committed table "
                               "has this value over 3 seeds") and "(1 seeds did not diverge)" in line
               for line in report.problems), report.problems

    fresh = copy.deepcopy(generated["rerun"])
    fresh.solver("learned").seeds = [1, 2]
    for row in fresh.solvers:
        for parts in row.curves.values():
            for part, values in parts.items():
                parts[part] = None if values is None else values[:5]  # depth 5: t=6 is not there
    report = tables.compare_records(record, fresh, "small.json")
    assert not report.ok
    assert "small.json: table 'small' row 'gd', mse: t=6 is beyond the fresh run's depth 5" in report.problems
    assert "small.json: table 'small' row 'learned': trained over seeds [1, 2, 3], the fresh run over [1, 2]" \
        in report.problems


@pytest.mark.parametrize(("metric", "committed", "fresh", "within"), [
    ({"scale": "db"}, -19.4, -20.3, True),
    ({"scale": "db"}, -19.4, -21.1, False),  # the du-ista row of issue 10
    ({"scale": "linear", "log_axis": True}, 1e-10, 1.25e-10, True),  # 0.97 dB
    ({"scale": "linear", "log_axis": True}, 1e-10, 1.27e-10, False),  # 1.04 dB
    ({"scale": "linear", "log_axis": True}, 1e-10, 8.0e-11, True),
    ({"scale": "linear", "log_axis": True}, 1e-10, 7.8e-11, False),
    ({"scale": "linear", "log_axis": False}, 0.20, 0.21, True),
    ({"scale": "linear", "log_axis": False}, 0.20, 0.22, False),
    ({"scale": "db"}, float("nan"), float("nan"), True),
    ({"scale": "db"}, -10.0, float("nan"), False),
])
def test_tolerance(metric, committed, fresh, within):
    size, ok, unit = tables.Tolerance().deviation(metric, committed, fresh)
    assert ok is within
    if metric.get("log_axis") and unit == "dB":
        assert math.isclose(size, abs(10 * math.log10(fresh / committed)))


def test_a_page_without_the_marker_is_a_clear_error(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# No table here\n")
    record = tables.TableData("small", "small.toml", "unfold compare", {}, {"mse": {"format": ".3e"}}, "mse", [1], 1,
                              {}, [])
    with pytest.raises(tables.MarkerError, match=r"page.md has no marker for table 'small': put "
                                                 r"'<!-- table: small -->' and '<!-- /table -->'"):
        tables.write_into(page, record)
    with pytest.raises(tables.MarkerError, match="no page shows table 'small'"):
        tables.require_pages("small", tables.pages_with_markers([page]), tmp_path)


@pytest.mark.parametrize(("text", "message"), [
    ("a\n<!-- table: small -->\n| x |\n", r"page.md:2: table 'small' is never closed: add '<!-- /table -->'"),
    ("a\n<!-- /table -->\n", r"page.md:2: '<!-- /table -->' closes no table"),
    ("<!-- table: a -->\n<!-- table: b -->\n<!-- /table -->\n", r"page.md:2: table marker 'b' inside the block of 'a'"),
    ("<!-- table: a colour=red -->\n<!-- /table -->\n", r"page.md:1: unknown table attribute 'colour'"),
    ("<!-- table a -->\n", r"page.md:1: malformed table marker"),
    ("<!-- table: a --> and more\n", r"page.md:1: malformed table marker"),
])
def test_malformed_markers_are_refused_naming_the_line(tmp_path, text, message):
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(tables.MarkerError, match=message):
        tables.pages_with_markers([page])


def test_markers_in_code_blocks_and_prose_are_not_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Put `<!-- table: x -->` before it.\n```\n<!-- table: a -->\n```\n<!-- table: b -->\n<!-- /table -->\n")
    assert [block.name for block in tables.pages_with_markers([page])[page]] == ["b"]


def test_script_refuses_a_table_no_page_shows_and_a_marker_without_configuration(generated, tmp_path, capsys):
    tool = generated["tool"]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "lonely.toml").write_text(TABLE_TOML)
    (tmp_path / "p.md").write_text("nothing\n")
    assert tool.main(["render", "--tables-dir", str(tmp_path / "t"), "--pages", str(tmp_path / "p.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tables: error: no page shows table 'lonely'")
    (tmp_path / "p.md").write_text("<!-- table: other -->\n<!-- /table -->\n")
    assert tool.main(["render", "--tables-dir", str(tmp_path / "t"), "--pages", str(tmp_path / "p.md")]) == 2
    assert "marker for table 'other', but there is no" in capsys.readouterr().err


def test_a_damaged_record_is_refused_naming_the_entry(generated, tmp_path):
    data = json.loads((generated["folder"] / "tables" / "small.json").read_text())
    data["solvers"][1]["curves"]["mse"]["central"] = data["solvers"][1]["curves"]["mse"]["central"][:3]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(tables.TableError, match=r"bad.json: solvers\[1\].curves\['mse'\].central is not a list of 6"):
        tables.load_table(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(tables.TableError, match="not a JSON table record"):
        tables.load_table(tmp_path / "bad.json")


def test_the_committed_docs_tables_are_their_records_rendered():
    """Every table block of README.md and docs/ is exactly what its record renders (a hand edit fails here)."""
    found = tables.pages_with_markers([ROOT / "README.md", ROOT / "docs"])
    assert not tables.unknown_markers(found, ROOT / "docs" / "tables")
    for page, blocks in found.items():
        text = page.read_text().splitlines()
        for block in blocks:
            record = tables.load_table(ROOT / "docs" / "tables" / f"{block.name}.json")
            shown = "\n".join(text[block.start + 1:block.end]).strip()
            assert shown == tables.render(record, metric=block.metric, rows=block.rows), \
                f"{page}: table {block.name!r} differs from docs/tables/{block.name}.json: run tools/tables.py render"


def test_the_docs_example_runs(tmp_path, monkeypatch):
    fence = re.compile(r"```python run tables\n(.*?)```", re.S)
    examples = fence.findall((ROOT / "docs" / "results.md").read_text())
    assert examples, "docs/results.md has no ```python run tables``` example"
    monkeypatch.chdir(tmp_path)
    for code in examples:
        exec(compile(code, "docs/results.md", "exec"), {})



def test_a_tuned_row_without_an_untuned_one_names_what_differs_from_the_solvers_defaults(core_plugin):
    from types import SimpleNamespace

    from doctables.pages import _differing_options

    tuned = tables.SolverRow(label="gd-tuned", name="constant-gd", options={"step": 0.123},
                             trainable=False, seeds=[], seed_status=[], curves={})
    assert _differing_options(tuned, SimpleNamespace(solvers=[tuned])) == "step = 0.123"
