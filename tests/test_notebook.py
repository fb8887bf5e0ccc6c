"""notebooks/colab_tpu.ipynb is valid and runs top to bottom in CPU_MODE under nbclient.

Every cell runs as written, shell (`!`) and magic (`%`) lines included: in CPU mode the
install cell installs the local checkout (not editable) into a folder of its own and the
notebook imports Koala from there; TensorBoard is inspected instead of served; the export
is shown by saved_model_cli. Photos come from ../shared/data.
"""

import os
import pathlib
import re
import sys

import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "colab_tpu.ipynb"
PARAMETERS = ("CPU_MODE = False", "REPO_URL = ", "REPO_REF = ", "BUCKET = ")
# An IPython startup file for the test's kernel: Jupyter's `!cmd` (and %pip, which runs
# through it) only stores a failing command's status in _exit_code and goes on, and a
# pipeline's status is its last command's (`!{TENSORBOARD} | tail -5` is tail's). Here each
# runs under bash with pipefail, and a failure raises, so nbclient stops on that cell.
STRICT_SHELL = """
import shlex
import subprocess

from IPython import get_ipython
from IPython.utils.process import system

_shell = get_ipython()


def _strict_system(command):
    command = _shell.var_expand(command, depth=1)
    status = system("bash -o pipefail -c " + shlex.quote(command))
    _shell.user_ns["_exit_code"] = status
    if status != 0:
        raise subprocess.CalledProcessError(status, command)


_shell.system = _strict_system
"""
# What `tensorboard --inspect` prints for a log folder with events (the cell shows its last
# lines): step statistics, then its ruler. Nothing else in the notebook prints these.
INSPECT_STEPS = re.compile(r"^\s+num_steps\s+(\d+)\s*$", re.MULTILINE)
INSPECT_RULER = re.compile(r"^={60,}\s*$", re.MULTILINE)


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
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-strict-shell.py").write_text(STRICT_SHELL)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
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
    # tensorboard --inspect of the run, in the output of the cell that runs it, after the
    # training summary that cell prints: the statistics of events it found in the run
    (index,) = [i for i, cell in enumerate(_code_cells(notebook))
                if "!{TENSORBOARD}" in cell.source]
    inspected = outputs[index].split("'step': 2", 1)[-1]
    assert INSPECT_RULER.search(inspected), outputs[index][-2000:]
    steps = [int(n) for n in INSPECT_STEPS.findall(inspected)]
    assert steps and min(steps) >= 1, outputs[index][-2000:]
    assert "No event files found" not in outputs[index]
    exported = list((tmp_path / "export" / "koala").iterdir())
    assert [p.name for p in exported] == ["1"]


def test_the_notebook_kernel_fails_on_a_failing_shell_command(tmp_path, monkeypatch):
    """The kernel set-up of the test above: a failing `!` command, even inside a pipe whose
    last command succeeds, stops the notebook with an error."""
    import nbclient

    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-strict-shell.py").write_text(STRICT_SHELL)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    cells = ['COMMAND = "echo fine"', "!{COMMAND} | tail -1\nprint('after', _exit_code)",
             "!false | tail -1", "print('never')"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="CalledProcessError"):
        client.execute()
    shown = ["".join(o.get("text", "") for o in cell.outputs) for cell in notebook.cells]
    assert "fine" in shown[1] and "after 0" in shown[1] and shown[3] == ""
