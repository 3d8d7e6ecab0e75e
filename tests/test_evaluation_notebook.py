"""notebooks/evaluation.ipynb runs, in a real Jupyter kernel, on a small sample, so it never rots."""

from __future__ import annotations

import nbclient
import nbformat
import pytest

from tests.conftest import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "evaluation.ipynb"


def test_evaluation_notebook_runs_and_plots_per_persona_results(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two questions (with the variants they need) for every persona: the whole path, in seconds.
    monkeypatch.setenv("CLEARANCE_EVAL_NOTEBOOK_LIMIT", "2")
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]  # nbformat is unannotated
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}
    )
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "resolved safely" in text and "leaked chunks 0" in text
    for persona in ("alice", "bob", "carol", "dan", "erin", "frank", "grace"):
        assert f"\n{persona}" in text, persona
    assert any("image/png" in o.get("data", {}) for o in outputs), "the per-persona figure was not drawn"
