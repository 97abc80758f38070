"""Downloads from mirrors, against a real HTTP server on 127.0.0.1: good, corrupted, truncated, down, stalled.

The small fake dataset of conftest.py stands in for Fashion-MNIST; its checksums
are injected as the expected table (data.OFFICIAL_GZ), so the check itself is the
real one. The subprocess test at the end serves the real files.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import DATA_ROOT, REPO_ROOT, needs_data, write_fake_fashion_mnist
from helpers import DatasetMissingError, data, fashion_mnist, tensors
from helpers.commands import data as data_command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: the connection is refused at once."""
    return f"http://127.0.0.1:{free_port()}/"


class Mirror:
    """A real HTTP server on 127.0.0.1 whose paths /<kind>/<name> serve ``files`` as a good, corrupted
    or truncated mirror would. Every request is logged in order in ``Mirror.log`` (shared by all)."""

    log: list[str] = []

    def __init__(self, files: dict[str, bytes], kind: str = "good"):
        self.files, self.kind = files, kind
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                Mirror.log.append(f"{mirror.kind}{self.path}")
                body = mirror.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                length = len(body)
                if mirror.kind == "corrupt":
                    i = len(body) // 2
                    body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1 :]
                elif mirror.kind == "truncated":  # promises the whole file, sends half, hangs up
                    body = body[: len(body) // 2]
                elif mirror.kind == "short":  # an honest header for a file that is too short
                    body = body[: len(body) // 2]
                    length = len(body)
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake dataset's .gz files (name -> bytes); their size and sha256 become the expected table."""
    source = write_fake_fashion_mnist(tmp_path / "source") / "FashionMNIST" / "raw"
    files = {name: (source / name).read_bytes() for name in data.RAW_FILES}
    table = {name: (len(b), hashlib.sha256(b).hexdigest()) for name, b in files.items()}
    monkeypatch.setattr(data, "OFFICIAL_GZ", table)
    monkeypatch.setattr(data, "OFFICIAL_SOURCES", (closed_url(),))  # the official servers are unreachable
    monkeypatch.delenv(data.MIRROR_ENV, raising=False)
    Mirror.log.clear()
    return files


@pytest.fixture
def mirrors(fake):
    started = {kind: Mirror(fake, kind) for kind in ("good", "corrupt", "truncated", "short")}
    yield {kind: m.url for kind, m in started.items()}
    for m in started.values():
        m.close()


def names_on_disk(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_official_unreachable_then_the_mirror_in_the_environment_works(tmp_path, mirrors, monkeypatch, capsys):
    monkeypatch.setenv(data.MIRROR_ENV, mirrors["good"])
    start = time.monotonic()
    train = fashion_mnist(tmp_path / "data")
    assert time.monotonic() - start < 20
    assert len(train) == 96 and train[0][0].shape == (1, 28, 28)
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert names_on_disk(raw) == sorted([*data.RAW_FILES, *(name[:-3] for name in data.RAW_FILES)])  # no .part
    assert Mirror.log == [f"good/{name}" for name in data.RAW_FILES]  # one request each, after the official one
    assert capsys.readouterr().err == ""  # nothing to report: the official source was only unreachable


def test_load_tensors_takes_a_mirror_parameter(tmp_path, mirrors):
    X, y = tensors.load_tensors(tmp_path / "data", train=False, mirror=mirrors["good"])
    assert X.shape == (48, 1, 28, 28) and y.shape == (48,)


@pytest.mark.parametrize(
    "bad, why",
    [
        ("corrupt", "SHA-256 differs"),
        ("truncated", "truncated"),
        ("short", "truncated: "),
    ],
)
def test_a_bad_mirror_is_named_and_the_next_one_is_used(tmp_path, mirrors, bad, why):
    reports = []
    raw = tmp_path / "raw"
    raw.mkdir()
    got = data.download_raw(raw, sources=[mirrors[bad], mirrors["good"]], report=reports.append)
    assert got == {name: mirrors["good"] + name for name in data.RAW_FILES}
    assert len(reports) == 4
    for name, line in zip(data.RAW_FILES, reports):
        assert line.startswith(f"refused {mirrors[bad]}{name}: ") and why in line
    # the order of tries: for each file the bad mirror first, then the good one
    assert Mirror.log == [f"{kind}/{name}" for name in data.RAW_FILES for kind in (bad, "good")]
    assert names_on_disk(raw) == sorted(data.RAW_FILES)
    assert data.check_raw(raw) == {name: None for name in data.RAW_FILES}


def test_only_bad_mirrors_fail_with_every_source_named_and_nothing_left(tmp_path, mirrors, monkeypatch):
    down = closed_url()
    monkeypatch.setenv(data.MIRROR_ENV, f"{mirrors['corrupt']}, {down}")
    root = tmp_path / "data"
    start = time.monotonic()
    with pytest.raises(DatasetMissingError) as info:
        fashion_mnist(root, mirror=mirrors["truncated"])
    assert time.monotonic() - start < 20, "a refused connection must fail within seconds"
    message = str(info.value)
    name = data.RAW_FILES[0]
    lines = [line for line in message.splitlines() if line.startswith("  - http")]
    # official first, then the mirror= parameter, then $HELPERS_DATA_MIRROR in its order
    assert [line.split(": ")[0] for line in lines] == [
        f"  - {data.OFFICIAL_SOURCES[0]}{name}",
        f"  - {mirrors['truncated']}{name}",
        f"  - {mirrors['corrupt']}{name}",
        f"  - {down}{name}",
    ]
    assert "Connection refused" in lines[0] and "truncated" in lines[1]
    assert "SHA-256" in lines[2] and "Connection refused" in lines[3]
    assert data.MIRROR_ENV in message and "怎么办" in message
    assert not root.exists(), "a failed download must leave no file and no folder behind"


def test_a_down_mirror_fails_within_seconds_and_is_not_asked_again(tmp_path, mirrors):
    down = closed_url()
    raw = tmp_path / "raw"
    raw.mkdir()
    start = time.monotonic()
    got = data.download_raw(raw, sources=[down, mirrors["good"]], report=pytest.fail)
    assert time.monotonic() - start < 10
    assert set(got.values()) == {mirrors["good"] + name for name in data.RAW_FILES}
    assert names_on_disk(raw) == sorted(data.RAW_FILES)


def test_a_mirror_that_stops_answering_times_out(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 1.0)
    with socket.socket() as silent:  # accepts connections (in the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        raw = tmp_path / "raw"
        raw.mkdir()
        start = time.monotonic()
        with pytest.raises(data.DownloadError, match=r"no answer within 1 s|timed out"):
            data.download_raw(raw, sources=[url])
        assert time.monotonic() - start < 5
    assert names_on_disk(raw) == []


def test_a_missing_file_on_one_mirror_is_taken_from_the_next(tmp_path, fake):
    partial = Mirror({k: v for k, v in fake.items() if k != "t10k-images-idx3-ubyte.gz"}, "good")
    full = Mirror(fake, "good")
    try:
        raw = tmp_path / "raw"
        raw.mkdir()
        got = data.download_raw(raw, sources=[partial.url, full.url])
        assert got["t10k-images-idx3-ubyte.gz"] == full.url + "t10k-images-idx3-ubyte.gz"
        assert {v for k, v in got.items() if k != "t10k-images-idx3-ubyte.gz"} == {
            partial.url + k for k in fake if k != "t10k-images-idx3-ubyte.gz"
        }
    finally:
        partial.close()
        full.close()


def test_verified_files_stay_when_a_later_one_fails(tmp_path, fake):
    partial = Mirror({k: v for k, v in fake.items() if k.startswith("train")}, "good")
    try:
        raw = tmp_path / "raw"
        raw.mkdir()
        with pytest.raises(data.DownloadError, match="t10k-images-idx3-ubyte.gz could not be downloaded"):
            data.download_raw(raw, sources=[partial.url])
        assert names_on_disk(raw) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    finally:
        partial.close()


# --- mirror URLs --------------------------------------------------------------------------------------


def test_mirror_lists_are_split_on_spaces_and_commas(monkeypatch):
    monkeypatch.setattr(data, "OFFICIAL_SOURCES", ("http://official.example/",))
    monkeypatch.setenv(data.MIRROR_ENV, " http://a.example/x ,http://b.example:8000/\n")
    assert data.all_sources("https://c.example/y/") == [
        "http://official.example/",
        "https://c.example/y/",
        "http://a.example/x/",
        "http://b.example:8000/",
    ]
    assert data.all_sources(["http://a.example/x", "http://d.example"], official=False) == [
        "http://a.example/x/",
        "http://d.example/",
        "http://b.example:8000/",
    ]
    monkeypatch.delenv(data.MIRROR_ENV)
    with pytest.raises(ValueError, match="no source"):
        data.all_sources(official=False)


@pytest.mark.parametrize(
    "url, match",
    [
        ("file:///etc/", "not an http"),
        ("ftp://example.org/", "not an http"),
        ("example.org/data", "not an http"),
        ("http://:80/", "not an http"),
        ("http://example.org/?x=1", "query"),
        ("http://example.org:99999/", "not a valid URL"),
    ],
)
def test_malformed_mirrors_are_refused(url, match):
    with pytest.raises(ValueError, match=match):
        data.check_mirror(url)


def test_a_mirror_with_a_password_is_refused_without_repeating_it(tmp_path, monkeypatch):
    monkeypatch.setenv(data.MIRROR_ENV, "https://teacher:s3cret@example.org/data/")
    with pytest.raises(ValueError) as info:
        fashion_mnist(tmp_path / "data")
    assert data.MIRROR_ENV in str(info.value) and "password" in str(info.value)
    assert "s3cret" not in str(info.value) and "teacher" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


# --- python -m helpers data -----------------------------------------------------------------------------


def test_data_command_downloads_verifies_and_says_where(tmp_path, mirrors, capsys):
    root = tmp_path / "data"
    assert data_command.main(["--root", str(root), "--mirror", mirrors["corrupt"], "--mirror", mirrors["good"]]) == 0
    out, err = capsys.readouterr()
    raw = root / "FashionMNIST" / "raw"
    assert f"the four Fashion-MNIST files are in {raw.resolve()}" in out
    assert f"refused {mirrors['corrupt']}train-images-idx3-ubyte.gz" in err
    assert names_on_disk(raw) == sorted(data.RAW_FILES)
    assert data_command.main(["--root", str(root), "--check"]) == 0


def test_data_check_names_the_wrong_file(tmp_path, fake, capsys):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, body in fake.items():
        (raw / name).write_bytes(body)
    damaged = raw / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:-1] + bytes([damaged.read_bytes()[-1] ^ 1]))
    (raw / "train-labels-idx1-ubyte.gz").unlink()
    assert data_command.main(["--root", str(tmp_path), "--check"]) == 1
    out, err = capsys.readouterr()
    lines = {line.split()[1].rsplit("/", 1)[-1].rstrip(":"): line.split()[0] for line in out.splitlines()[1:] if line}
    assert lines == {
        "train-images-idx3-ubyte.gz": "ok",
        "train-labels-idx1-ubyte.gz": "WRONG",
        "t10k-images-idx3-ubyte.gz": "ok",
        "t10k-labels-idx1-ubyte.gz": "WRONG",
    }
    assert "t10k-labels-idx1-ubyte.gz: its SHA-256 differs" in out and "train-labels-idx1-ubyte.gz: missing" in out
    assert "t10k-labels-idx1-ubyte.gz, train-labels" in err or "train-labels-idx1-ubyte.gz, t10k-labels" in err
    # a download does not overwrite a wrong file the user put there; it names it instead
    assert data_command.main(["--root", str(tmp_path), "--mirror", closed_url()]) == 1
    assert "t10k-labels-idx1-ubyte.gz: its SHA-256 differs" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--mirror", "file:///etc/"],
        ["--check", "--serve"],
        ["--port", "8001"],
        ["--serve", "--port", "70000"],
        ["--no-official"],
    ],
)
def test_data_usage_errors_exit_2(tmp_path, fake, argv):
    try:
        code = data_command.main(["--root", str(tmp_path / "data"), *argv])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    assert code == 2
    assert not (tmp_path / "data").exists()


def test_the_server_serves_only_the_four_files(tmp_path, fake):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, body in fake.items():
        (raw / name).write_bytes(body)
    (raw / "secret.txt").write_text("not for students")
    server = data_command.make_server(tmp_path, "127.0.0.1", 0)
    server.RequestHandlerClass.index = b"index"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for name, body in fake.items():
            assert urllib.request.urlopen(f"{base}/{name}", timeout=5).read() == body
        for path in [
            "/secret.txt",
            "/../FashionMNIST/raw/secret.txt",
            "/%2e%2e/raw/train-images-idx3-ubyte.gz",
            "/FashionMNIST/raw/train-images-idx3-ubyte.gz",
            "/raw/",
            "//etc/passwd",
            "/train-images-idx3-ubyte",
        ]:
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(base + path, timeout=5)
            assert info.value.code == 404, path
        request = urllib.request.Request(f"{base}/{data.RAW_FILES[0]}", data=b"x", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 405
        assert urllib.request.urlopen(base + "/", timeout=5).read() == b"index"
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(p.name for p in raw.iterdir()) == sorted([*fake, "secret.txt"])


def test_the_server_refuses_to_serve_unverified_files(tmp_path, fake):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, body in fake.items():
        (raw / name).write_bytes(body[:-1] if name.startswith("t10k-images") else body)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: .* bytes where the official file has"):
        data_command.make_server(tmp_path, "127.0.0.1", 0)


@needs_data
def test_data_serve_feeds_another_machine(tmp_path):
    """A teacher's ``data --serve`` process, a student's ``data --mirror`` process, a fresh data folder."""
    port = free_port()
    env = dict(os.environ)
    env.pop(data.MIRROR_ENV, None)
    teacher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helpers",
            "data",
            "--serve",
            "--root",
            str(DATA_ROOT),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = [teacher.stdout.readline() for _ in range(4)]  # printed once the port is open
        url = f"http://127.0.0.1:{port}/"
        assert lines[0].startswith(f"serving the four verified files of data/FashionMNIST/raw at {url}"), lines
        assert lines[2].strip() == f"HELPERS_DATA_MIRROR={url} python -m helpers lab"
        assert lines[3].strip() == f"python -m helpers data --no-official --mirror {url}"
        student = subprocess.run(
            [sys.executable, "-m", "helpers", "data", "--no-official", "--mirror", url, "--root", str(tmp_path / "d")],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert student.returncode == 0, student.stderr
        raw = tmp_path / "d" / "FashionMNIST" / "raw"
        assert f"the four Fashion-MNIST files are in {raw.resolve()}" in student.stdout
        assert names_on_disk(raw) == sorted(data.RAW_FILES)
        for name in data.RAW_FILES:
            assert (raw / name).read_bytes() == (DATA_ROOT / "FashionMNIST" / "raw" / name).read_bytes()
    finally:
        teacher.terminate()
        teacher.wait(30)
        teacher.stdout.close()


@needs_data
@pytest.mark.parametrize(
    "host, said",
    [
        ("999.1.1.1", "is not an address"),
        ("no-such-host.invalid", "is not an address"),
        ("192.0.2.1", "of this machine"),
    ],
)
def test_a_host_that_cannot_be_used_is_a_usage_error(capsys, host, said):
    from helpers.__main__ import main

    assert main(["data", "--serve", "--host", host, "--port", "0", "--root", str(DATA_ROOT)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err and "--port" not in err.split(".")[-1]
