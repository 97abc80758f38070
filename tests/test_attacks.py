"""Attacks on what students and teachers run: a hostile LAN client of ``data --serve``, a hostile mirror,
a hostile mirror URL. Each test failed before its fix."""

from __future__ import annotations

import http.server
import io
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import redirect_stderr

import pytest
from test_data_mirrors import fake  # noqa: F401 - the fixture

from helpers import data
from helpers.commands import data as data_command


def _serve(tmp_path, files):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, body in files.items():
        (raw / name).write_bytes(body)
    server = data_command.make_server(tmp_path, "127.0.0.1", 0)
    server.RequestHandlerClass.index = b"index"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, raw


def _stop(server):
    server.shutdown()
    server.server_close()


def test_serve_log_shows_no_terminal_escape_from_a_client(tmp_path, fake):
    """A LAN client's request line reached the teacher's terminal raw (colours, window title, cursor moves)."""
    server, _ = _serve(tmp_path, fake)
    port = server.server_address[1]
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /\x1b]0;pwned\x07\x1b[2J HTTP/1.0\r\n\r\n")
                s.recv(4096)
            time.sleep(0.2)
    finally:
        _stop(server)
    logged = err.getvalue()
    assert "404" in logged
    assert "\x1b" not in logged and "\x07" not in logged
    assert "\\x1b" in logged


def test_serve_drops_a_client_that_sends_nothing(tmp_path, fake, monkeypatch):
    """A slow-loris client held a thread (and a socket) forever: the handler had no timeout."""
    monkeypatch.setattr(data_command._Handler, "timeout", 0.5)
    server, _ = _serve(tmp_path, fake)
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as s:
            s.sendall(b"GET /")  # never finishes the request line
            start = time.monotonic()
            assert s.recv(4096) == b""  # the server hangs up
            assert time.monotonic() - start < 5
    finally:
        _stop(server)


def test_serve_default_has_a_timeout():
    assert 0 < data_command._Handler.timeout <= 120


def test_serve_keeps_serving_the_verified_bytes_when_a_file_is_swapped(tmp_path, fake):
    """Files were checked once at start, then read from disk on every request: a file replaced later
    (or a symlink to another file) was served as if verified."""
    server, raw = _serve(tmp_path, fake)
    name = data.RAW_FILES[1]
    secret = tmp_path / "secret.txt"
    secret.write_text("the teacher's private notes")
    (raw / name).unlink()
    (raw / name).symlink_to(secret)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/{name}", timeout=5).read()
    finally:
        _stop(server)
    assert body == fake[name]


class _HostileMirror:
    def __init__(self, reason: str):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(404, reason)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self):
        _stop(self.server)


def test_a_hostile_mirror_cannot_write_escape_sequences_into_the_error(tmp_path, fake):
    """The HTTP reason phrase of a mirror went verbatim into DownloadError, i.e. onto the student's terminal."""
    mirror = _HostileMirror("Not Found\x1b]0;pwned\x07\x1b[2J")
    reports = []
    try:
        with pytest.raises(data.DownloadError) as info:
            data.download_raw(tmp_path, sources=[mirror.url], report=reports.append)
    finally:
        mirror.close()
    text = str(info.value) + "".join(reports)
    assert "HTTP 404" in text
    assert "\x1b" not in text and "\x07" not in text


@pytest.mark.parametrize(
    "url", ["http://example.org/\x1b[2Jdata/", "http://example.org/a\x07b/", "http://exa\u202emple.org/"]
)
def test_mirror_urls_with_control_characters_are_refused(url):
    """A mirror URL is printed ("sources in order"); control characters in it reached the terminal."""
    with pytest.raises(ValueError) as info:
        data.check_mirror(url)
    assert "\x1b" not in str(info.value) and "\x07" not in str(info.value) and "\u202e" not in str(info.value)


# --- the grader: forging a pass through modules the check cell imports itself --------------------------------


def _grader_lesson():
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [
        new_markdown_cell("# 01 小练习", id="md0"),
        new_code_cell('device = "auto"', id="c1", metadata={"tags": ["parameters"]}),
        new_code_cell("import torch\nvalues = torch.arange(6.0)", id="c2"),
        new_markdown_cell("**练习 1.** 写 `double(x)`，不用乘法。", id="md3"),
        new_code_cell("def double(x):\n    return x + x", id="c4", metadata={"tags": ["solution", "exercise-1"]}),
        new_code_cell(
            "import inspect\nimport torch\n"
            "assert '*' not in inspect.getsource(double), '不能用乘法'\n"
            "t = torch.arange(4.0)\nassert torch.allclose(double(t), t * 2), 'double 不对'\n",
            id="c5",
            metadata={"tags": ["check", "exercise-1"]},
        ),
        new_markdown_cell("**练习 2.** 算出 `total`。", id="md6"),
        new_code_cell("total = int(values.sum())", id="c7", metadata={"tags": ["solution", "exercise-2"]}),
        new_code_cell(
            "import re\nassert re.fullmatch(r'15', str(total)), 'total 不对'\n",
            id="c8",
            metadata={"tags": ["check", "exercise-2"]},
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    return nb


GRADER_ATTACKS = {
    # right numbers, forbidden way; inspect.getsource is made to lie
    "patched_inspect": (
        "import inspect\ninspect.getsource = lambda f: 'def double(x):\\n    return x + x\\n'\n"
        "def double(x):\n    return 2 * x\n",
        "total = int(values.sum())",
    ),
    # `import torch` in the check gets a fake whose allclose always says yes
    "fake_sys_modules": (
        "import sys, types, torch as real\nfake = types.ModuleType('torch')\n"
        "fake.__dict__.update(vars(real))\nfake.allclose = lambda *a, **k: True\n"
        "sys.modules['torch'] = fake\ndef double(x):\n    return x + 0\n",
        "total = int(values.sum())",
    ),
    # the source inspect reads comes from linecache: make it show a permitted body
    "patched_linecache": (
        "import linecache\nreal = linecache.getlines\n"
        "linecache.getlines = lambda *a, **k: [l.replace('2 * x', 'x + x') for l in real(*a, **k)]\n"
        "def double(x):\n    return 2 * x\n",
        "total = int(values.sum())",
    ),
    # ... or rewrite linecache's entry for the student's own cell
    "poisoned_linecache": (
        "def double(x):\n    return 2 * x\nimport linecache\n"
        "fname = double.__code__.co_filename\nn = double.__code__.co_firstlineno\n"
        "lines = ['\\n'] * (n - 1) + ['def double(x):\\n', '    return x + x\\n']\n"
        "linecache.cache[fname] = (sum(map(len, lines)), None, lines, fname)\n",
        "total = int(values.sum())",
    ),
    # re.fullmatch always matches
    "patched_re": ("def double(x):\n    return x + x\n", "import re\nre.fullmatch = lambda *a, **k: True\ntotal = 0\n"),
}


@pytest.fixture(scope="module")
def grader_results(tmp_path_factory):
    import nbformat

    from helpers.commands.check import check_submissions, exercise_number
    from helpers.commands.classroom import write_student_edition

    root = tmp_path_factory.mktemp("attacks")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    (root / "data").mkdir()
    nbformat.write(_grader_lesson(), notebooks / "01_tiny.ipynb")
    student_path = write_student_edition(root / "student", notebooks_dir=notebooks)[0]
    student = nbformat.read(student_path, as_version=4)
    submissions = {"correct": ("def double(x):\n    return x + x", "total = int(values.sum())"), **GRADER_ATTACKS}
    for name, (one, two) in submissions.items():
        nb = nbformat.from_dict(nbformat.reads(nbformat.writes(student), as_version=4))
        for cell in nb.cells:
            if cell.cell_type == "code" and "check" not in cell.metadata.get("tags", []):
                if exercise_number(cell) == 1:
                    cell.source = one
                elif exercise_number(cell) == 2:
                    cell.source = two
        (root / "class" / name).mkdir(parents=True)
        nbformat.write(nb, root / "class" / name / student_path.name)
    results = check_submissions(
        [root / "class"], notebooks_dir=notebooks, jobs=2, cell_timeout=60, notebook_timeout=180
    )
    return {r.student: {n: e.status for n, e in r.exercises.items()} for r in results}


def test_grader_a_correct_answer_passes(grader_results):
    from helpers.commands.check import PASSED

    assert grader_results["correct"] == {1: PASSED, 2: PASSED}


@pytest.mark.parametrize("name", sorted(GRADER_ATTACKS))
def test_grader_modules_the_check_imports_cannot_be_forged(grader_results, name):
    from helpers.commands.check import FAILED

    assert FAILED in grader_results[name].values(), (name, grader_results[name])


@pytest.mark.parametrize("host, said", [("0.0.0.0", True), ("127.0.0.1", False)])
def test_serve_says_when_it_listens_on_every_interface(tmp_path, fake, monkeypatch, capsys, host, said):
    """The default --host 0.0.0.0 opened the port to the whole network without saying so."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, body in fake.items():
        (raw / name).write_bytes(body)
    monkeypatch.setattr(http.server.ThreadingHTTPServer, "serve_forever", lambda self: None)
    assert data_command.serve_main(tmp_path, host, 0) == 0
    out = capsys.readouterr().out
    assert ("listening on every network interface" in out) == said
    assert ("--host 127.0.0.1 keeps it to this machine" in out) == said
