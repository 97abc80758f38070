import ast
import contextlib
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import REPO_ROOT
from helpers.commands import runner


def write_notebook(path: Path, *sources: str, parameters: str = 'device = "auto"\nepochs = 2') -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# tiny", id="m1"),
        nbformat.v4.new_code_cell(parameters, id="p1", metadata={"tags": ["parameters"]}),
    ]
    nb.cells += [nbformat.v4.new_code_cell(src, id=f"c{i}") for i, src in enumerate(sources)]
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_series_order_and_selection():
    names = [p.name for p in runner.list_notebooks()]
    assert names == [
        "01_tensors.ipynb",
        "02_datasets_transforms.ipynb",
        "03_build_model.ipynb",
        "04_model_layers.ipynb",
        "05_model_parameters.ipynb",
        "06_training.ipynb",
        "07_save_load.ipynb",
    ]  # the series, in order, and nothing else
    assert [p.name for p in runner.select_notebooks(["3"])] == ["03_build_model.ipynb"]
    assert [p.name for p in runner.select_notebooks(["03", "03_build_model.ipynb"])] == ["03_build_model.ipynb"]
    with pytest.raises(ValueError, match="no notebook '42'"):
        runner.select_notebooks(["42"])


@pytest.mark.parametrize(
    "text, value",
    [("3", 3), ("0.5", 0.5), ("1e-3", 0.001), ("True", True), ("false", False), ("cuda", "cuda"), ("'x y'", "x y")],
)
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
    assert "epochs = 5" in "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs
    )
    assert good.read_bytes() == source_before, "the source notebook must not change"
    failed = runner.run_notebook(bad, tmp_path / "out", {}, progress_bar=False)
    assert failed.status == "failed"
    assert failed.error == """code cell 3 ("raise ValueError('boom')"): ValueError: boom"""


def test_run_cli_errors_are_clear(tmp_path):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "helpers", "run", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
        )

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
        [
            sys.executable,
            "-m",
            "helpers",
            "run",
            "--notebooks",
            str(nbdir),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "auto",
            "-p",
            "epochs",
            "1",
            "--no-progress",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "[1/2] 01_good.ipynb" in result.stdout and "[2/2] 02_bad.ipynb" in result.stdout
    rows = {
        line.split()[0]: line.split()
        for line in result.stdout.splitlines()
        if line.endswith(".ipynb") is False and line[:2] in ("01", "02")
    }
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
    # a timing cell whose stored output was cleared is filled in again, not kept empty
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].outputs = []
    nbformat.write(nb, path)
    assert runner.refresh_notebook(path) == "updated"
    assert nbformat.read(path, as_version=4).cells[2].outputs


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


def cli(*args, timeout=300, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "helpers", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


# --- a parameter is data, never code -----------------------------------------------------------------

PAYLOAD = '(\'"; import os; os.system("touch {marker}"); "\',)'


@pytest.mark.parametrize(
    "text",
    [
        "(1, 2)",
        "{1, 2}",
        "b'x'",
        "1j",
        "1e999",
        "-1e999",
        "[('a',)]",
        "{'a': {1, 2}}",
        "{1: 'a'}",
        "[" * 22 + "1" + "]" * 22,
        PAYLOAD,
    ],
)
def test_parse_value_refuses_anything_but_plain_data(text):
    with pytest.raises(
        ValueError, match="a parameter can only be a number, true/false, None, a string, or a list or dict"
    ):
        runner.parse_value(text)


@pytest.mark.parametrize(
    "text, value",
    [
        ("[1, 'a', None]", [1, "a", None]),
        ("{'a': [1.5, True]}", {"a": [1.5, True]}),
        ("None", None),
        ("-3", -3),
        ("nan", "nan"),
        ("'(1, 2)'", "(1, 2)"),
    ],
)
def test_parse_value_accepts_plain_data(text, value):
    assert runner.parse_value(text) == value


def _tricky_strings():
    rng = random.Random(0)
    alphabet = "ab\\\"'\n\r\t\0#{}[]()\u2028\x85中\ud800 "
    quotes3 = "'" * 3
    fixed = [
        "\\",
        '"',
        "'",
        '\\"',
        '"' * 3,
        quotes3,
        "\\\n",
        "a" * 100_000 + '"\\',
        "\x00",
        "\ud800",
        '"; import os; "',
    ]
    return fixed + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(300)]


def test_every_plain_value_reaches_the_notebook_as_exactly_itself():
    values = {
        "i": -5,
        "big": 10**40,
        "f": -0.0,
        "tiny": 5e-324,
        "b": False,
        "n": None,
        "s": "中文",
        "e": "",
        "l": [],
        "d": {},
        "nested": {"a": [1, {"b": [True, None, 2.5]}]},
    }
    for i, text in enumerate(_tricky_strings()):
        values[f"s{i}"] = text
        values[f"d{i}"] = {text: [text]}
    source = runner.injected_source(values)
    tree = ast.parse(source)
    assert all(isinstance(node, ast.Assign) for node in tree.body) and len(tree.body) == len(values)
    for node in tree.body:
        back = ast.literal_eval(node.value)
        assert runner._same_value(back, values[node.targets[0].id])


@pytest.mark.parametrize(
    "value",
    [(1,), {1}, b"x", 1j, math.nan, math.inf, {1: "a"}, [("a",)], {"a": {1}}, Path("x"), 10**5000, range(2)],
    ids=lambda v: type(v).__name__,
)
def test_injected_source_refuses_what_is_not_plain_data(value):
    with pytest.raises(ValueError, match="give a number, true/false, None, a string|a parameter can only be"):
        runner.injected_source({"seed": value})


@pytest.mark.parametrize("name", ["x = 1; import os", "not", "1x", "a b", ""])
def test_parameter_names_must_be_python_names(name):
    with pytest.raises(ValueError, match="is not a Python name"):
        runner.check_parameter_value(name, 1)


def test_run_notebook_never_runs_code_from_a_parameter(tmp_path):
    marker = tmp_path / "PWNED"
    path = write_notebook(tmp_path / "nb" / "01_p.ipynb", "print(repr(seed))", parameters='device = "auto"\nseed = 0')
    for value in [(f'"; import os; os.system("touch {marker}"); "',), {f"{marker}"}, [(1,)]]:
        with pytest.raises(ValueError):
            runner.run_notebook(path, tmp_path / "out", {"seed": value}, progress_bar=False)
    assert not (tmp_path / "out").exists()
    hostile = '\\"; import os; os.system("touch ' + str(marker) + '"); x = "\n' + "'" * 3 + "\\"
    result = runner.run_notebook(path, tmp_path / "out", {"seed": hostile}, progress_bar=False)
    assert result.status == "ok", result.error
    printed = "".join(
        o.get("text", "")
        for c in nbformat.read(result.output, as_version=4).cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert ast.literal_eval(printed.strip()) == hostile, "the kernel received exactly the string"
    assert not marker.exists()


def test_run_cli_refuses_the_payload_from_the_issue(tmp_path):
    marker = tmp_path / "PWNED"
    result = cli(
        "run",
        "--only",
        "01",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "r"),
        "-p",
        "seed",
        PAYLOAD.format(marker=marker),
    )
    assert result.returncode == 2 and not marker.exists() and not (tmp_path / "r").exists()
    assert result.stderr.startswith("error: -p seed: ") and result.stderr.count("\n") == 1


# --- every notebook's parameters are checked before any notebook runs ----------------------------------

SETUP = """import helpers

helpers.check_parameter("seed", seed, int, minimum=0, maximum=2**32 - 1)
for name in ("epochs", "more_epochs"):
    helpers.check_parameter(name, globals()[name], int, minimum=1, maximum=100)
helpers.check_parameter("learning_rate", learning_rate, float, minimum=1e-6, maximum=10)
helpers.check_parameter("resume_at", resume_at, int, minimum=1, maximum=more_epochs)
helpers.check_parameter("odd", odd, int, minimum=len("abc"))  # not a literal: left to the notebook
"""
PARAMETERS = 'device = "auto"\nseed = 0\nepochs = 2\nmore_epochs = 3\nlearning_rate = 1e-3\nresume_at = 1\nodd = 0'


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"epochs": 0}, "02_setup.ipynb: parameter epochs must be an integer >= 1 and <= 100; got 0"),
        ({"more_epochs": 101}, "parameter more_epochs must be an integer >= 1 and <= 100; got 101"),
        ({"learning_rate": math.nan}, "parameter learning_rate must be a finite number"),
        ({"learning_rate": 11}, "parameter learning_rate must be a finite number >= 1e-06 and <= 10; got 11"),
        ({"resume_at": 3, "more_epochs": 2}, "parameter resume_at must be an integer >= 1 and <= 2; got 3"),
        ({"seed": -1}, "parameter seed must be an integer >= 0 and <= 4294967295; got -1"),
        ({"epochs": "3"}, "parameter epochs must be an integer, like its default 2; got '3'"),
        ({"epochs": True}, "parameter epochs must be an integer, like its default 2; got True"),
        ({"device": 1}, "parameter device must be a string, like its default 'auto'; got 1"),
    ],
)
def test_check_notebook_parameters_reads_the_setup_cell(tmp_path, parameters, message):
    path = write_notebook(tmp_path / "02_setup.ipynb", SETUP, parameters=PARAMETERS)
    with pytest.raises(ValueError, match=re.escape(message)):
        runner.check_notebook_parameters(path, parameters)


def test_check_notebook_parameters_accepts_good_values_and_leaves_unreadable_checks_to_the_notebook(tmp_path):
    path = write_notebook(tmp_path / "02_setup.ipynb", SETUP, parameters=PARAMETERS)
    runner.check_notebook_parameters(path, {})
    runner.check_notebook_parameters(path, {"epochs": 100, "learning_rate": 1, "resume_at": 3, "odd": -5})


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"epochs": 0}, "06_training.ipynb: parameter epochs must be an integer >= 1"),
        ({"learning_rate": math.nan}, "06_training.ipynb: parameter learning_rate must be a finite number"),
        ({"seed": -1}, "parameter seed must be an integer >= 0"),
        ({"batch_size": "64"}, "06_training.ipynb: parameter batch_size must be an integer"),
    ],
)
def test_the_series_own_checks_are_applied_up_front(parameters, message):
    path = runner.NOTEBOOKS_DIR / "06_training.ipynb"
    runner.check_notebook_parameters(path, {})  # the defaults pass
    with pytest.raises(ValueError, match=re.escape(message)):
        runner.check_notebook_parameters(path, parameters)


def test_run_refuses_a_bad_value_before_any_notebook_runs(tmp_path):
    nbdir = tmp_path / "nb"
    write_notebook(nbdir / "01_first.ipynb", "open('ran', 'w').close()", parameters='device = "auto"\nseed = 0')
    write_notebook(nbdir / "02_setup.ipynb", SETUP, parameters=PARAMETERS)
    result = cli("run", "--notebooks", str(nbdir), "--out", str(tmp_path / "out"), "-p", "epochs", "0")
    assert result.returncode == 2
    assert result.stderr == "error: 02_setup.ipynb: parameter epochs must be an integer >= 1 and <= 100; got 0\n"
    assert not (nbdir / "ran").exists() and not (tmp_path / "out").exists()


# --- the sources are never written -----------------------------------------------------------------------


def test_run_refuses_every_spelling_of_the_source_folder(tmp_path):
    nbdir = tmp_path / "nb"
    write_notebook(nbdir / "01_a.ipynb", "print(epochs)")
    (tmp_path / "x").mkdir()
    (tmp_path / "link").symlink_to(nbdir)
    (tmp_path / "a_file").write_text("x")
    before = {p.name: p.read_bytes() for p in nbdir.iterdir()}
    for out, message in (
        (nbdir, "inside the source folder"),
        (tmp_path / "x" / ".." / "nb", "inside the source folder"),
        (tmp_path / "link", "inside the source folder"),
        (nbdir / "sub", "inside the source folder"),
        (tmp_path / "a_file", "is a file"),
    ):
        result = cli("run", "--notebooks", str(nbdir), "--out", str(out))
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
        with pytest.raises(ValueError, match=message):
            runner.run_notebook(nbdir / "01_a.ipynb", out, {})
    assert {p.name: p.read_bytes() for p in nbdir.iterdir()} == before


def test_a_link_in_the_output_folder_is_replaced_not_written_through(tmp_path):
    source = write_notebook(tmp_path / "nb" / "01_a.ipynb", "print(epochs)")
    before = source.read_bytes()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "01_a.ipynb").symlink_to(source)
    result = runner.run_notebook(source, tmp_path / "out", {"epochs": 7}, progress_bar=False)
    assert result.status == "ok" and source.read_bytes() == before
    assert not result.output.is_symlink()


def test_an_interrupted_run_keeps_the_previous_output_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import papermill

    source = write_notebook(tmp_path / "nb" / "01_a.ipynb", "print(epochs)")
    out = tmp_path / "out"
    out.mkdir()
    (out / "01_a.ipynb").write_text("the finished output of an earlier run")

    def half_then_interrupted(input_path, output_path, **kwargs):
        Path(output_path).write_text('{"cells": [')  # papermill writes as it goes
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", half_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run_notebook(source, out, {})
    assert [p.name for p in out.iterdir()] == ["01_a.ipynb"]
    assert (out / "01_a.ipynb").read_text() == "the finished output of an earlier run"


def test_a_partial_file_left_by_a_killed_run_is_removed_by_the_next(tmp_path, monkeypatch):
    import subprocess
    import sys

    import papermill

    source = write_notebook(tmp_path / "nb" / "01_a.ipynb", "print(epochs)")
    out = tmp_path / "out"
    out.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = out / f".01_a.{gone.stdout.strip()}-0badf00d.partial.ipynb"  # its process has ended
    living = out / f".01_a.{os.getppid()}-feedf00d.partial.ipynb"  # a run still going in another process
    other = out / f".02_b.{gone.stdout.strip()}-0badf00d.partial.ipynb"  # another lesson's: not this run's business
    for path in (killed, living, other):
        path.write_text('{"cells": [')

    def finished(input_path, output_path, **kwargs):
        Path(output_path).write_text("done")

    monkeypatch.setattr(papermill, "execute_notebook", finished)
    assert runner.run_notebook(source, out, {}).status == "ok"
    assert sorted(p.name for p in out.iterdir()) == sorted(["01_a.ipynb", living.name, other.name])


@pytest.mark.parametrize("command", ["run", "refresh"])
def test_a_mistyped_notebooks_folder_is_an_error(tmp_path, command):
    extra = ["--out", str(tmp_path / "out")] if command == "run" else []
    result = cli(command, "--notebooks", str(tmp_path / "notebokos"), *extra)
    assert result.returncode == 2
    assert (
        result.stderr
        == f"error: the notebooks folder {tmp_path / 'notebokos'} does not exist; check the --notebooks path\n"
    )


# --- Ctrl-C, kernel noise ------------------------------------------------------------------------------------

# No sleeps to guess when the run is ready: the notebook's cell writes a marker file (its kernel's pid) once the
# run is inside it, and the test sends Ctrl-C only then. Every wait is bounded, but generous, so that a loaded
# machine is only slower, never a failure; the cell blocks far longer than any wait here, so a Ctrl-C that did
# not stop the run fails clearly instead of letting the notebook finish.
STARTED_WAIT_S = 600  # starting one or two kernels on a busy machine
STOP_WAIT_S = 300  # from Ctrl-C to the command's exit: kernel shut down, files removed


def _interrupt(tmp_path, args, started):
    """Run ``python -m helpers ARGS``, send SIGINT once ``started`` holds the kernel's pid, return (process, stdout, stderr)."""
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    (tmp_path / "tmp").mkdir()
    # SIG_DFL in the child: a shell that starts the test suite in the background (``... &``) makes the suite
    # ignore SIGINT, the child would inherit that, and Ctrl-C would never reach it
    process = subprocess.Popen(
        [sys.executable, "-m", "helpers", *args],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + STARTED_WAIT_S
        while not _marker_pid(started) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        if not _marker_pid(started):
            pytest.fail(f"the sleeping cell did not start within {STARTED_WAIT_S} s: {process.poll()=}")
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"Ctrl-C did not stop `helpers {args[0]}` within {STOP_WAIT_S} s")
    except BaseException:  # a failed test leaves neither the command nor its sleeping kernel behind
        if process.poll() is None:
            process.kill()
            process.communicate()
        if _marker_pid(started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(_marker_pid(started), signal.SIGKILL)
        raise
    return process, stdout, stderr


def _marker_pid(started: Path) -> int:
    """The pid the sleeping cell wrote, once it is completely written (0 before)."""
    try:
        text = started.read_text()
    except FileNotFoundError:
        return 0
    return int(text) if text.endswith("\n") else 0


def _gone(pid: int, wait_s: float = 60) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


SLEEPER = "import os, pathlib, time\npathlib.Path({started!r}).write_text(str(os.getpid()) + '\\n')\ntime.sleep(3600)"


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_during_run_stops_cleanly(tmp_path):
    nbdir, started = tmp_path / "nb", tmp_path / "started"
    write_notebook(nbdir / "01_a.ipynb", "print(epochs)")
    write_notebook(nbdir / "02_sleep.ipynb", SLEEPER.format(started=str(started)))
    write_notebook(nbdir / "03_c.ipynb", "print(epochs)")
    process, stdout, stderr = _interrupt(
        tmp_path, ["run", "--notebooks", str(nbdir), "--out", str(tmp_path / "out"), "--no-progress"], started
    )
    assert process.returncode == 130
    assert (
        stderr.strip()
        == "interrupted: 02_sleep.ipynb was stopped and has no output; finished before it: 01_a.ipynb (ok)"
    )
    assert "Traceback" not in stdout + stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["01_a.ipynb"]
    assert _gone(_marker_pid(started)), "the kernel must not outlive the run"
    assert list((tmp_path / "tmp").iterdir()) == [], "no connection or socket files left behind"


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_during_refresh_stops_cleanly_and_keeps_the_source(tmp_path):
    started = tmp_path / "started"
    source = write_notebook(tmp_path / "nb" / "01_sleep.ipynb", SLEEPER.format(started=str(started)))
    before = source.read_bytes()
    process, stdout, stderr = _interrupt(tmp_path, ["refresh", "--notebooks", str(tmp_path / "nb")], started)
    assert process.returncode == 130
    assert stderr.strip() == "interrupted: 01_sleep.ipynb was left as it was; refreshed before it: none"
    assert "Traceback" not in stdout + stderr and "FAILED" not in stderr
    assert source.read_bytes() == before and sorted(p.name for p in source.parent.iterdir()) == ["01_sleep.ipynb"]
    assert _gone(_marker_pid(started))


def test_the_kernels_own_messages_stay_out_of_the_terminal(tmp_path):
    nbdir = tmp_path / "nb"
    noisy = (
        "import atexit, os\natexit.register(os.write, 2, b'KERNEL-STDERR-MARK\\n')\n"
        "get_ipython().kernel.log.error('KeyboardInterrupt caught in kernel.')"
    )
    for n in (1, 2, 3):
        write_notebook(nbdir / f"0{n}_noisy.ipynb", noisy)
    result = cli("run", "--notebooks", str(nbdir), "--out", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "KERNEL-STDERR-MARK" not in result.stderr + result.stdout
    assert "KeyboardInterrupt" not in result.stderr + result.stdout and "IPKernelApp" not in result.stderr
    assert result.stderr == ""


def test_ctrl_c_in_any_command_is_one_line_and_exit_130(monkeypatch, capsys):
    import helpers.__main__ as cli_main

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli_main.COMMANDS, "html", ("helpers.commands.runner", "interrupted_for_test", ""))
    monkeypatch.setattr(runner, "interrupted_for_test", interrupted, raising=False)
    assert cli_main.main(["html"]) == 130
    assert capsys.readouterr().err == "\ninterrupted\n"


def test_a_failed_refresh_prints_no_colour_codes(tmp_path):
    source = write_notebook(tmp_path / "nb" / "01_bad.ipynb", "raise ValueError('\\x1b]0;owned\\x07 broken')")
    before = source.read_bytes()
    result = cli("refresh", "--notebooks", str(tmp_path / "nb"))
    assert result.returncode == 1 and "FAILED: " in result.stderr
    assert "\x1b" not in result.stderr and "broken" in result.stderr  # the traceback's colours and the OSC title
    assert source.read_bytes() == before
