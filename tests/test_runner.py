import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import REPO_ROOT
from helpers import runner


def write_notebook(path: Path, *sources: str, parameters: str = 'device = "auto"\nepochs = 2') -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# tiny", id="m1"),
                nbformat.v4.new_code_cell(parameters, id="p1", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(src, id=f"c{i}") for i, src in enumerate(sources)]
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_series_order_and_selection():
    names = [p.name for p in runner.list_notebooks()]
    assert names == sorted(names) and names[0].startswith("0")
    assert "03_build_model.ipynb" in names
    assert [p.name for p in runner.select_notebooks(["3"])] == ["03_build_model.ipynb"]
    assert [p.name for p in runner.select_notebooks(["03", "03_build_model.ipynb"])] == ["03_build_model.ipynb"]
    with pytest.raises(ValueError, match="no notebook '42'"):
        runner.select_notebooks(["42"])


@pytest.mark.parametrize("text, value", [("3", 3), ("0.5", 0.5), ("1e-3", 0.001), ("True", True),
                                         ("false", False), ("cuda", "cuda"), ("'x y'", "x y")])
def test_parse_value(text, value):
    assert runner.parse_value(text) == value


def test_notebook_parameters_reads_defaults(tmp_path):
    path = write_notebook(tmp_path / "01_a.ipynb", "print(epochs)")
    assert runner.notebook_parameters(path) == {"device": "auto", "epochs": 2}


def test_format_table():
    table = runner.format_table([runner.RunResult("01_a.ipynb", "ok", 1.234, "cpu")])
    lines = table.splitlines()
    assert lines[0].split() == ["notebook", "status", "seconds", "device"]
    assert lines[2].split() == ["01_a.ipynb", "ok", "1.2", "cpu"]


def test_run_notebook_injects_parameters_and_reports_failures(tmp_path):
    good = write_notebook(tmp_path / "nb" / "01_good.ipynb", "print('epochs =', epochs)")
    bad = write_notebook(tmp_path / "nb" / "02_bad.ipynb", "x = 1", "raise ValueError('boom')")
    source_before = good.read_bytes()
    ok = runner.run_notebook(good, tmp_path / "out", {"epochs": 5, "unknown": 1}, progress_bar=False)
    assert ok.status == "ok" and ok.parameters == {"epochs": 5}
    executed = nbformat.read(ok.output, as_version=4)
    assert "epochs = 5" in "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert good.read_bytes() == source_before, "the source notebook must not change"
    failed = runner.run_notebook(bad, tmp_path / "out", {}, progress_bar=False)
    assert failed.status == "failed"
    assert failed.error == """code cell 3 ("raise ValueError('boom')"): ValueError: boom"""


def test_run_cli_errors_are_clear(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "helpers", "run", *args], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)

    result = cli("--device", "tpu", "--out", str(tmp_path))
    assert result.returncode == 2 and "device must be one of" in result.stderr
    result = cli("--only", "03", "-p", "no_such_knob", "1", "--out", str(tmp_path))
    assert result.returncode == 2 and "unknown parameter(s) no_such_knob" in result.stderr
    result = cli("--only", "99", "--out", str(tmp_path))
    assert result.returncode == 2 and "no notebook '99'" in result.stderr


def test_run_cli_table_and_exit_code(tmp_path):
    nbdir = tmp_path / "nb"
    write_notebook(nbdir / "01_good.ipynb", "print(epochs)")
    write_notebook(nbdir / "02_bad.ipynb", "1 / 0")
    result = subprocess.run(
        [sys.executable, "-m", "helpers", "run", "--notebooks", str(nbdir), "--out", str(tmp_path / "out"),
         "--device", "auto", "-p", "epochs", "1", "--no-progress"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert "[1/2] 01_good.ipynb" in result.stdout and "[2/2] 02_bad.ipynb" in result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.endswith(".ipynb") is False and line[:2] in ("01", "02")}
    import torch  # the table shows the device "auto" picked, not the word "auto"
    picked = str(torch.accelerator.current_accelerator()) if torch.accelerator.is_available() else "cpu"
    assert rows["01_good.ipynb"][1:2] == ["ok"] and rows["01_good.ipynb"][-1] == picked
    assert rows["02_bad.ipynb"][1:2] == ["failed"]
    assert "FAILED 02_bad.ipynb: code cell 2 ('1 / 0')" in result.stderr and "ZeroDivisionError" in result.stderr
    assert (tmp_path / "out" / "01_good.ipynb").exists()


def test_refresh_is_deterministic_and_cleans_metadata(tmp_path):
    path = write_notebook(tmp_path / "01_r.ipynb", "import random\nrandom.seed(0)\nprint(random.random())", "40 + 2")
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].metadata["collapsed"] = True
    nb.metadata["widgets"] = {"junk": 1}
    nbformat.write(nb, path)
    assert runner.refresh_notebook(path) == "updated"
    first = path.read_bytes()
    assert runner.refresh_notebook(path) == "unchanged"
    assert path.read_bytes() == first
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3]
    assert code[2].outputs[0]["data"]["text/plain"] == "42"
    assert all(set(c.metadata) <= {"tags"} for c in nb.cells)
    assert set(nb.metadata) == {"kernelspec", "language_info"}
    assert not list(tmp_path.glob(".*.tmp"))


def test_refresh_keeps_file_when_only_ignored_outputs_change(tmp_path):
    path = write_notebook(tmp_path / "01_t.ipynb", "import time\nprint(time.perf_counter_ns())", "print('stable')")
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].metadata["tags"] = [runner.IGNORE_TAG]
    nbformat.write(nb, path)
    assert runner.refresh_notebook(path) == "updated"
    first = path.read_bytes()
    assert runner.refresh_notebook(path) == "kept"
    assert path.read_bytes() == first


def test_refresh_leaves_source_alone_when_a_cell_fails(tmp_path):
    path = write_notebook(tmp_path / "01_f.ipynb", "raise RuntimeError('broken')")
    before = path.read_bytes()
    with pytest.raises(Exception, match="broken"):
        runner.refresh_notebook(path)
    assert path.read_bytes() == before


def test_main_usage_and_unknown_command():
    result = subprocess.run([sys.executable, "-m", "helpers"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "commands:" in result.stdout and "refresh" in result.stdout
    result = subprocess.run([sys.executable, "-m", "helpers", "fly"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "unknown command 'fly'" in result.stderr
