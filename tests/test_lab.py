"""JupyterLab opens a lesson clean: stored metadata as the kernel reports it, and the project's lab settings."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jsonschema
import nbformat
import pytest

from helpers.commands import lab, runner
from helpers.commands.runner import NOTEBOOKS_DIR, apply_kernel_metadata, kernel_metadata, list_notebooks

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"

STALE = {  # what every lesson stored before: JupyterLab filled in the rest and marked the lesson modified
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python", "pygments_lexer": "ipython3"},
}


@pytest.fixture(scope="module")
def live() -> dict:
    """What a freshly started python3 kernel reports, asked independently of the helper under test."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        language_info = kc.kernel_info(reply=True, timeout=60)["content"]["language_info"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    spec = KernelSpecManager().get_kernel_spec("python3")
    return {
        "kernelspec": {"display_name": spec.display_name, "language": spec.language, "name": "python3"},
        "language_info": language_info,
    }


def test_kernel_metadata_is_what_the_kernel_reports(live):
    assert kernel_metadata() == live
    info = live["language_info"]
    # the fields JupyterLab fills in when they are missing
    assert {"codemirror_mode", "file_extension", "mimetype", "nbconvert_exporter", "version"} <= set(info)
    assert STALE["language_info"].items() <= info.items() and STALE["kernelspec"] == live["kernelspec"]


@pytest.mark.parametrize("path", list_notebooks(NOTEBOOKS_DIR), ids=lambda p: p.name[:2])
def test_every_lesson_stores_the_metadata_the_kernel_reports(path, live):
    stored = nbformat.read(path, as_version=4).metadata
    fix = f"run `python -m helpers refresh --metadata-only --only {path.name[:2]}`"
    assert set(stored) == {"kernelspec", "language_info"}, fix
    assert stored["kernelspec"] == live["kernelspec"], fix
    info = {k: v for k, v in live["language_info"].items() if k != "version"}
    assert {k: v for k, v in stored["language_info"].items() if k != "version"} == info, fix
    if stored["language_info"].get("version") != live["language_info"]["version"]:
        pytest.skip(
            f"{path.name} was stored with Python {stored['language_info'].get('version')}, this kernel is "
            f"Python {live['language_info']['version']}: JupyterLab updates that one field on opening"
        )


def test_applying_the_metadata_changes_nothing_else(tmp_path, live):
    source = list_notebooks(NOTEBOOKS_DIR)[0]
    nb = nbformat.read(source, as_version=4)
    nb.metadata = nbformat.from_dict(STALE)
    path = tmp_path / source.name
    nbformat.write(nb, path)
    assert apply_kernel_metadata(path) is True
    after = nbformat.read(path, as_version=4)
    assert after.metadata == live
    assert after.cells == nb.cells and (after.nbformat, after.nbformat_minor) == (nb.nbformat, nb.nbformat_minor)
    written = path.read_bytes()
    assert apply_kernel_metadata(path) is False
    assert path.read_bytes() == written, "an up-to-date notebook is not rewritten"


def test_refresh_metadata_only_runs_no_cell(tmp_path, live, capsys):
    nb = nbformat.v4.new_notebook(metadata=STALE)
    nb.cells = [nbformat.v4.new_code_cell("raise SystemExit('must not run')")]
    for name in ("01_a.ipynb", "02_b.ipynb"):
        nbformat.write(nb, tmp_path / name)
    before = {key: os.environ.get(key) for key in ("CUDA_VISIBLE_DEVICES", "HELPERS_AUTO_DEVICE")}
    assert runner.refresh_main(["--notebooks", str(tmp_path), "--metadata-only", "--only", "02"]) == 0
    assert {key: os.environ.get(key) for key in before} == before, "refresh leaves the caller's environment as it was"
    assert capsys.readouterr().out == "02_b.ipynb: metadata updated\n"
    assert nbformat.read(tmp_path / "02_b.ipynb", as_version=4).metadata == live
    assert nbformat.read(tmp_path / "02_b.ipynb", as_version=4).cells[0].outputs == []
    assert nbformat.read(tmp_path / "01_a.ipynb", as_version=4).metadata == STALE


def test_clean_metadata_keeps_tags_and_writes_the_kernel_metadata(live):
    nb = nbformat.v4.new_notebook(metadata={"papermill": {"duration": 1.0}, **STALE})
    cell = nbformat.v4.new_code_cell(
        "1", metadata={"tags": ["parameters"], "execution": {"iopub.status.busy": "2026-01-01T00:00:00Z"}}
    )
    nb.cells = [cell]
    cleaned = runner._clean_metadata(nb)
    assert cleaned.metadata == live and cleaned.cells[0].metadata == {"tags": ["parameters"]}


# --- python -m helpers lab -------------------------------------------------------------------------------


def test_the_project_settings_turn_the_news_prompt_off_and_match_the_schema():
    overrides = json.loads((lab.SETTINGS_DIR / "overrides.json").read_text(encoding="utf-8"))
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    for plugin, values in overrides.items():  # a misspelt key or value would be ignored silently by JupyterLab
        package, name = plugin.split(":")
        schema = json.loads((SCHEMAS / package / f"{name}.json").read_text(encoding="utf-8"))
        jsonschema.validate(values, schema)
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"jupyter/settings/*.json"' in pyproject, "the settings must be installed with the package"


def test_lab_command_line():
    command = lab.lab_command()
    assert command[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert f"--LabApp.app_settings_dir={lab.SETTINGS_DIR}" in command and command[-1] == str(NOTEBOOKS_DIR)
    command = lab.lab_command(["student", "--port", "8899"])
    assert command[-3:] == ["student", "--port", "8899"] and str(NOTEBOOKS_DIR) not in command
