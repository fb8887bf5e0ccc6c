"""notebooks/colab_tpu.ipynb is valid and its code runs top to bottom in CPU_MODE.

Shell (`!`) and magic (`%`) lines are Colab-only (pip install, TensorBoard, saved_model_cli)
and are skipped; everything else runs as written, on photos from ../shared/data.
"""

import pathlib

import nbformat
import pytest

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "colab_tpu.ipynb"


def _code_cells():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def _python_only(source):
    return "\n".join(line for line in source.splitlines()
                     if not line.lstrip().startswith(("!", "%")))


def test_notebook_is_valid_and_has_a_cpu_mode_flag_first():
    nbformat.validate(nbformat.read(NOTEBOOK, as_version=4))
    cells = _code_cells()
    assert cells[0].startswith("CPU_MODE = False")
    text = "\n".join(cells)
    for needed in ("select_strategy", "writer.build", "train.train", "%tensorboard",
                   "colorize.colorize", "export.export", "gs://", "pip install"):
        assert needed in text, needed


def test_code_cells_run_top_to_bottom_in_cpu_mode(tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("KOALA_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("KOALA_SHARED", str(shared_data.parent))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    cells = _code_cells()
    cells[0] = cells[0].replace("CPU_MODE = False", "CPU_MODE = True", 1)
    namespace = {}
    for index, source in enumerate(cells):
        try:
            exec(compile(_python_only(source), f"<cell {index}>", "exec"), namespace)  # noqa: S102
        except Exception as error:  # name the failing cell
            pytest.fail(f"cell {index} failed: {error!r}\n{source}")
    assert namespace["summary"]["step"] == 2
    assert (tmp_path / "runs" / "koalarization" / "bundle" / "model.keras").is_file()
    assert pathlib.Path(namespace["export_dir"]).is_dir()
