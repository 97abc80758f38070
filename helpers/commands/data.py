"""``python -m helpers data``: download and verify Fashion-MNIST, check it, or serve it to a classroom."""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.server
import socket
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from helpers import data
from helpers.commands.errors import CommandError, reports_errors
from helpers.commands.textsafe import safe_text

DEFAULT_PORT = 8000
SERVE_TIMEOUT_S = 30  # a client that sends or reads nothing for this long is dropped (no slow-loris)


def _raw_dir(root: Path) -> Path:
    return root / "FashionMNIST" / "raw"


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it lies inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _progress(name: str, size: int):
    from tqdm import tqdm

    return tqdm(
        total=size,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )


def _report_problems(raw_dir: Path, problems: dict) -> int:
    """Print one line per file; return 0 when all four are the official files, else 1."""
    bad = {name: why for name, why in problems.items() if why is not None}
    for name, why in problems.items():
        print(f"  {'ok   ' if why is None else 'WRONG'} {_shown(raw_dir / name)}" + (f": {why}" if why else ""))
    if bad:
        print(
            f"\n{len(bad)} of {len(problems)} files are missing or not the official ones: "
            f"{', '.join(bad)}.\nDelete the wrong ones and run `python -m helpers data` (with --mirror URL "
            "if the official servers are unreachable) to download them again.",
            file=sys.stderr,
        )
        return 1
    return 0


def check_main(root: Path) -> int:
    raw_dir = _raw_dir(root)
    print(f"checking {_shown(raw_dir)} ...")
    return _report_problems(raw_dir, data.check_raw(raw_dir))


def download_main(root: Path, mirrors: list[str], official: bool) -> int:
    raw_dir = _raw_dir(root)
    problems = data.check_raw(raw_dir)
    wrong = [name for name, why in problems.items() if why not in (None, "missing")]
    if wrong:  # never overwrite a file the user put there: say which one is wrong
        print(f"{_shown(raw_dir)} holds files that are not the official ones:", file=sys.stderr)
        return _report_problems(raw_dir, problems)
    missing = [name for name, why in problems.items() if why == "missing"]
    if missing:
        try:
            sources = data.all_sources(mirrors, official)
        except ValueError as exc:
            raise CommandError(str(exc), 2) from None
        new_dirs = [d for d in (raw_dir, *raw_dir.parents) if not d.exists()]  # deepest first
        try:
            raw_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot create {_shown(raw_dir)}: {exc.strerror or exc}", 1) from None
        print(f"downloading {len(missing)} file(s) into {_shown(raw_dir)}; sources in order:")
        for url in sources:
            print(f"  {url}")
        try:
            got = data.download_raw(raw_dir, sources=sources, progress=_progress)
        except (data.DownloadError, OSError) as exc:
            for folder in new_dirs:  # folders made for this download go again when it got nothing
                try:
                    folder.rmdir()
                except OSError:
                    break
            if isinstance(exc, data.DownloadError):
                raise CommandError(str(exc), 1) from None
            raise CommandError(f"cannot write into {_shown(raw_dir)}: {exc.strerror or exc}", 1) from None
        for name, url in got.items():
            print(f"  got {name} from {url}")
    print(f"verifying {_shown(raw_dir)} ...")
    status = _report_problems(raw_dir, data.check_raw(raw_dir))
    if status == 0:
        print(f"\nthe four Fashion-MNIST files are in {raw_dir.resolve()}")
    return status


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves exactly the four verified .gz files, read-only; every other path is 404.

    The files are read once, when they are verified, and served from memory: a file
    replaced on disk later (or a symlink put in its place) is never served.
    """

    raw_dir: Path = Path()
    files: dict = {}  # name -> the verified bytes
    index: bytes = b""
    server_version = "helpers-data"
    timeout = SERVE_TIMEOUT_S

    def _target(self) -> bytes | None:
        path = urllib.parse.urlsplit(self.path).path
        name = path.rsplit("/", 1)[-1] if path.count("/") == 1 else None  # only "/NAME"; no folders, no ..
        return self.files.get(name) if name in data.OFFICIAL_GZ else None

    def _send(self, head_only: bool) -> None:
        body: bytes | None
        if urllib.parse.urlsplit(self.path).path == "/":
            body = self.index
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head_only:
                self.wfile.write(body)
            return
        body = self._target()
        if body is None:
            self.send_error(404, "only the four Fashion-MNIST .gz files are served here")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head_only:
            return
        view = memoryview(body)
        for start in range(0, len(body), 1 << 16):
            self.wfile.write(view[start : start + (1 << 16)])

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._send(head_only=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(head_only=True)

    def _refuse(self) -> None:
        self.send_error(405, "read-only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def log_message(self, format: str, *args) -> None:  # one short line per request, on stderr
        # the request line is the client's text: no escape sequence from the LAN reaches the teacher's terminal
        sys.stderr.write(f"{self.address_string()} {safe_text(format % args)}\n")


def lan_address() -> str:
    """This machine's address on the local network (no packet is sent), else 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # UDP connect only picks the outgoing interface
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def make_server(root: Path, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """A server for the verified files under ``root``; ValueError when they are missing or wrong."""
    raw_dir = _raw_dir(root)
    files, bad = {}, {}
    for name, (size, sha256) in data.OFFICIAL_GZ.items():  # read once; these very bytes are checked and served
        path = raw_dir / name
        try:
            body = path.read_bytes() if path.is_file() else None
        except OSError as exc:
            bad[name] = f"cannot be read ({exc.strerror or exc})"
            continue
        if body is None:
            bad[name] = "missing"
        elif len(body) != size:
            bad[name] = f"{len(body)} bytes where the official file has {size}"
        elif hashlib.sha256(body).hexdigest() != sha256:
            bad[name] = "its SHA-256 differs from the official file's"
        else:
            files[name] = body
    if bad:
        lines = "; ".join(f"{name}: {why}" for name, why in bad.items())
        raise ValueError(
            f"only verified files are served, and {_shown(raw_dir)} is not complete ({lines}). "
            "Run `python -m helpers data` first."
        )
    handler = type("Handler", (_Handler,), {"raw_dir": raw_dir.resolve(), "files": files})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def student_lines(url: str) -> list[str]:
    return [
        f"HELPERS_DATA_MIRROR={url} python -m helpers lab",
        f"python -m helpers data --no-official --mirror {url}",
    ]


def serve_main(root: Path, host: str, port: int) -> int:
    try:
        server = make_server(root, host, port)
    except ValueError as exc:
        raise CommandError(str(exc), 1) from None
    except socket.gaierror as exc:  # the --host as typed is no address: a usage error, not a busy port
        raise CommandError(
            f"--host {host!r} is not an address ({exc.strerror or exc}); use 0.0.0.0 (every network of this "
            "machine), 127.0.0.1 (this machine only) or one of this machine's own IP addresses",
            2,
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:  # an address, but not one of this machine's
            raise CommandError(
                f"cannot listen on {host}:{port}: {exc.strerror}. --host must be an address of this machine "
                "(or 0.0.0.0 for all of them)",
                2,
            ) from None
        raise CommandError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}. Choose another --port.", 1
        ) from None
    shown_host = lan_address() if host in ("0.0.0.0", "") else host
    url = f"http://{shown_host}:{server.server_address[1]}/"
    lines = student_lines(url)
    handler: Any = server.RequestHandlerClass  # the class make_server built for this server alone
    handler.index = (
        "Fashion-MNIST for this classroom:\n"
        + "".join(f"  {name}\n" for name in data.OFFICIAL_GZ)
        + "\nOn a student's machine, in the project folder, type one of:\n"
        + "".join(f"  {line}\n" for line in lines)
    ).encode("utf-8")
    print(f"serving the four verified files of {_shown(_raw_dir(root))} at {url} (read-only; Ctrl-C stops)")
    print("students type, in the project folder, one of:")
    for line in lines:
        print(f"  {line}")
    print("(the first tries the official servers first, then this one; the second only this one)")
    if host in ("0.0.0.0", "", "::"):
        print(
            f"listening on every network interface of this machine (port {server.server_address[1]}): anyone on "
            "the network can fetch these four public files; --host 127.0.0.1 keeps it to this machine"
        )
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


@reports_errors
def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers data",
        allow_abbrev=False,  # --hide is not --hide-solutions: a typo is an error, not a guess
        description="Download Fashion-MNIST (official servers first, then mirrors), verify its four .gz files "
        "against their SHA-256, check files already there, or serve them to a classroom.",
    )
    parser.add_argument(
        "--root", type=Path, default=Path("data"), help="data folder holding FashionMNIST/raw (default: data)"
    )
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="URL",
        help="a base URL holding the four .gz files, tried after the official servers and "
        f"before ${data.MIRROR_ENV} (repeatable)",
    )
    parser.add_argument(
        "--no-official",
        action="store_true",
        help="do not try the official servers: only --mirror and $" + data.MIRROR_ENV,
    )
    parser.add_argument("--check", action="store_true", help="only check the files already there")
    parser.add_argument(
        "--serve", action="store_true", help="serve the verified files over HTTP (for a classroom); Ctrl-C stops"
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on with --serve (default: all)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port for --serve (default: {DEFAULT_PORT})")
    args = parser.parse_args(list(argv))
    if args.check and args.serve:
        parser.error("--check and --serve cannot be combined")
    if (args.check or args.serve) and (args.mirror or args.no_official):
        parser.error("--mirror and --no-official are for downloading, not with --check or --serve")
    if not args.serve and any(a.split("=")[0] in ("--host", "--port") for a in argv):
        parser.error("--host and --port go with --serve")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535; got {args.port}")
    if args.check:
        return check_main(args.root)
    if args.serve:
        return serve_main(args.root, args.host, args.port)
    return download_main(args.root, args.mirror, official=not args.no_official)
