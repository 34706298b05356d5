"""The teaching notebook runs top to bottom (on tiny settings), so it never rots."""

import nbformat
import pytest
from conftest import REPO, SHARED_ARCHIVE
from nbclient import NotebookClient

NOTEBOOK = REPO / "notebooks" / "degradation.ipynb"


@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason=f"the live run reads {SHARED_ARCHIVE}")
def test_notebook_executes(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_REPRO_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("RESNET_REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "depth  56: plain   853,018 parameters, ResNet   853,018" in text
    assert "plain-8: done" in text and "resnet-14: done" in text
    # sections 5-7: gradients measured live, the bottleneck's counts, the committed benchmark shown
    assert "plain-14: first / last layers' gradient at initialisation" in text
    assert "basic / bottleneck at 256 channels: 16.8x the parameters, 16.9x the multiply-adds" in text
    assert "benchmarks/bottleneck.py" in text
