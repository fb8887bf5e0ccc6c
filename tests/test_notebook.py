"""notebooks/colab_tpu.ipynb is valid and runs top to bottom in CPU_MODE under nbclient.

Every cell runs as written, shell (`!`) and magic (`%`) lines included: in CPU mode the
install cell installs the local checkout (not editable) into a folder of its own and the
notebook imports Koala from there; TensorBoard is inspected instead of served; the export
is shown by saved_model_cli. Photos come from ../shared/data.
"""

import os
import pathlib
import sys

import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "colab_tpu.ipynb"
PARAMETERS = ("CPU_MODE = False", "REPO_URL = ", "REPO_REF = ", "BUCKET = ")


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_notebook_is_valid_and_its_parameters_come_first():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    first = _code_cells(notebook)[0].source
    for parameter in PARAMETERS:
        assert f"\n{parameter}" in f"\n{first}", parameter
    text = "\n".join(cell.source for cell in _code_cells(notebook))
    for needed in ('select_strategy("default" if CPU_MODE else "tpu")', "ensure_records",
                   "loop.train", "%tensorboard", "colorizer.colorize", "saved_model.export",
                   "saved_model_cli", "git+{REPO_URL}@{REPO_REF}"):
        assert needed in text, needed
    assert "YOUR-BUCKET" in first and "gs://" in first


@pytest.mark.timeout(900)
def test_runs_top_to_bottom_in_cpu_mode_with_nbclient(tmp_path, monkeypatch, shared_data):
    import nbclient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    first = _code_cells(notebook)[0]
    first.source = first.source.replace("CPU_MODE = False", "CPU_MODE = True", 1)
    monkeypatch.setenv("KOALA_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("KOALA_SHARED", str(shared_data.parent))
    monkeypatch.setenv("KOALA_CHECKOUT", str(REPO))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    # the kernel, pip, tensorboard and saved_model_cli of this environment
    monkeypatch.setenv("PATH", f"{pathlib.Path(sys.executable).parent}{os.pathsep}"
                               f"{os.environ['PATH']}")
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    outputs = {index: "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
               for index, cell in enumerate(_code_cells(notebook))}
    text = "\n".join(outputs.values())
    assert f"koala from {tmp_path / 'site' / 'koala'}" in text  # the installed copy ran
    assert "'step': 2" in text
    assert (tmp_path / "runs" / "koalarization" / "bundle" / "model.keras").is_file()
    assert "inputs['image_bytes']" in text  # saved_model_cli show of the export
    assert "loss" in text and "psnr" in text.lower()  # tensorboard --inspect of the run
    exported = list((tmp_path / "export" / "koala").iterdir())
    assert [p.name for p in exported] == ["1"]
