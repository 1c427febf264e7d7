"""The imaging tutorial notebook (a jupytext Markdown file) executes from top to bottom and shows an image."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "imaging-tutorial.md"


def test_tutorial_notebook_executes_and_draws_the_reconstructions(tmp_path):
    jupytext = pytest.importorskip("jupytext", reason="the test extra of du-imaging brings jupytext")
    nbclient = pytest.importorskip("nbclient", reason="the test extra of du-imaging brings nbclient")
    notebook = jupytext.read(NOTEBOOK)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "pgd-net held-out PSNR at t=4" in text and "learned steps eta_t" in text
    assert any("image/png" in o.get("data", {}) for o in outputs if o.output_type in ("display_data", "execute_result"))
