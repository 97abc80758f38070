"""Fashion-MNIST: the class names and a loader that checks the files and gives a clear error when offline."""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import math
import os
import re
import socket
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .files import atomic_write

if TYPE_CHECKING:  # for the annotations only
    from torchvision import datasets

# torch and torchvision are imported inside the functions that use them, so that
# ``python -m helpers data --check`` and ``import helpers`` start fast.

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CLASSES_ZH = ("T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "短靴")

RAW_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# The official unpacked files: name -> (size in bytes, sha256). Computed from the release whose .gz files
# have the md5 sums torchvision checks (datasets.FashionMNIST.resources).
OFFICIAL = {
    "train-images-idx3-ubyte": (47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte": (60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte": (7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte": (10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
# The official .gz files: name -> (size in bytes, sha256). Their md5 sums are the ones torchvision checks
# (datasets.FashionMNIST.resources; tests/test_data.py verifies both on the real files).
OFFICIAL_GZ = {
    "train-images-idx3-ubyte.gz": (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    "train-labels-idx1-ubyte.gz": (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    "t10k-images-idx3-ubyte.gz": (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    "t10k-labels-idx1-ubyte.gz": (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
}
# Where the official files are published: torchvision's own list (datasets.FashionMNIST.mirrors, written out
# so that this module need not import torchvision; tests/test_data.py checks they agree), tried first, in order.
OFFICIAL_SOURCES = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
MIRROR_ENV = "HELPERS_DATA_MIRROR"  # one or more base URLs, separated by spaces or commas
DOWNLOAD_TIMEOUT_S = 10.0  # per connection attempt and per read: a server that stops answering fails in seconds
RELEASE_URL = "https://github.com/zalandoresearch/fashion-mnist"
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)
_checked: dict[tuple[str, int, int], tuple[str | None, int]] = {}  # (path, size, mtime) -> (problem, count)


class DatasetMissingError(RuntimeError):
    """Fashion-MNIST is not on disk and could not be downloaded."""


class DatasetDamagedError(DatasetMissingError):
    """A Fashion-MNIST file on disk is damaged and could not be restored."""


def _missing_message(raw_dir: Path, reason: str) -> str:
    files = "\n".join(f"  - {name}" for name in RAW_FILES)
    raw_dir = raw_dir.resolve()  # relative paths such as ../data are ambiguous in a message
    return (
        f"Fashion-MNIST is not in {raw_dir} and could not be downloaded ({reason}).\n"
        f"Put these four files (the official Fashion-MNIST release) into {raw_dir}:\n{files}\n"
        f"They are published at {RELEASE_URL} ; "
        "on a machine with internet access download=True fetches them automatically. "
        "Then run the same code again."
    )


def _read_only_message(folder: Path, action: str) -> str:
    return (
        f"{action}: the folder {folder.resolve()} is read-only. Make it writable, or give a data_root "
        "you can write to, then run the same code again."
    )


DEFAULT_TRANSFORM_REPR = "v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])"


class _DefaultTransform:
    """The default ``transform`` of ``fashion_mnist``; stands for ``to_float_image()`` until torchvision is loaded."""

    def __repr__(self) -> str:
        return DEFAULT_TRANSFORM_REPR


_DEFAULT_TRANSFORM = _DefaultTransform()


def to_float_image() -> Callable:
    """The series' image transform (torchvision.transforms.v2): a PIL image -> float32 tensor [1, H, W] in [0, 1].

    ``ToImage`` keeps the uint8 pixels, ``ToDtype(..., scale=True)`` converts them and multiplies by 1/255.
    It replaces the older ``ToTensor()`` (which divides by 255; the two differ in the last bit only).
    """
    import torch
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def fashion_mnist(
    root: str | Path = "data",
    train: bool = True,
    transform: Callable | _DefaultTransform | None = _DEFAULT_TRANSFORM,
    target_transform: Callable | None = None,
    download: bool = True,
    mirror: str | Sequence[str] | None = None,
) -> datasets.FashionMNIST:
    """Return the Fashion-MNIST training (or test) set stored under ``root``.

    With the files in ``root/FashionMNIST/raw`` this works offline. The two files
    the split reads are checked first: a file of the official size must have the
    official checksum (``OFFICIAL``); a file of any other size, such as the tiny
    dataset the tests write, cannot be the official one and must be a well-formed
    IDX file (28x28 images, labels 0 to 9, as many bytes as its header says). A
    damaged file is restored from its intact ``.gz`` next to it (atomically);
    otherwise DatasetDamagedError names the file and what to do. A file that
    passed is not read again in the same process while its size and time stamp
    stay the same.

    Missing files are downloaded from the official sources (``OFFICIAL_SOURCES``),
    then from the mirrors in ``mirror`` and in the environment variable
    ``HELPERS_DATA_MIRROR`` (base URLs that hold the four ``.gz`` files, separated
    by spaces or commas), in that order; see ``download_raw``. Every ``.gz`` is
    checked against its official SHA-256 before it takes its name; a source that
    serves a wrong or truncated file is named and the next one is tried. When the
    files cannot be had, raises DatasetMissingError naming every source tried and
    why, the folder, and the four files that belong there; nothing half-downloaded
    is left on disk (complete, verified files stay for the next try).
    """
    from torchvision import datasets

    if transform is _DEFAULT_TRANSFORM:
        transform = to_float_image()
    root = Path(root)
    raw_dir = root / "FashionMNIST" / "raw"
    missing = _prepare(raw_dir, train)
    if missing:
        if not download:
            raise DatasetMissingError(_missing_message(raw_dir, "download=False"))
        _download(root, raw_dir, mirror)
        missing = _prepare(raw_dir, train)
        if missing:  # the download reported success but left files out
            raise DatasetMissingError(_missing_message(raw_dir, f"{', '.join(missing)} still missing after it"))
    return datasets.FashionMNIST(
        root=str(root), train=train, transform=transform, target_transform=target_transform, download=False
    )


def _prepare(raw_dir: Path, train: bool) -> list[str]:
    """Check the split's files, unpack or restore them from their .gz files; return the .gz names still missing."""
    prefix = "train-" if train else "t10k-"
    missing, counts = [], {}
    for gz_name in RAW_FILES:
        name = gz_name[: -len(".gz")]
        path, gz = raw_dir / name, raw_dir / gz_name
        needed = name.startswith(prefix)
        if path.is_file():
            if not needed:
                continue  # torchvision only asks that it exists
            problem, count = file_problem(path)
            if problem is not None:
                if not gz.is_file():
                    raise DatasetDamagedError(
                        f"{path.resolve()} is damaged ({problem}) and there is no {gz_name} next to it to restore "
                        f"it from. Delete it and run again with internet access to download it, or copy the "
                        f"official file from {RELEASE_URL} into {raw_dir.resolve()}."
                    )
                count = _unpack(gz, path, problem)
        elif gz.is_file():
            count = _unpack(gz, path, None)
        else:
            missing.append(gz_name)
            continue
        if needed:
            counts[name] = count
    images, labels = f"{prefix}images-idx3-ubyte", f"{prefix}labels-idx1-ubyte"
    if not missing and counts[images] != counts[labels]:
        raise DatasetDamagedError(
            f"{raw_dir.resolve()} holds {counts[images]} {prefix[:-1]} images but {counts[labels]} labels; "
            f"the files do not belong together. Put the matching files from {RELEASE_URL} there."
        )
    return missing


class _Checker:
    """Checks one unpacked IDX file as its bytes stream by: official checksum, or a well-formed layout."""

    def __init__(self, name: str):
        self.name = name
        self.images = "images" in name
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.largest_label = 0

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        if len(self.head) < 16:
            self.head += chunk[: 16 - len(self.head)]
        if not self.images and len(chunk) > max(0, 8 - self.size):
            self.largest_label = max(self.largest_label, max(chunk[max(0, 8 - self.size) :]))
        self.size += len(chunk)

    def result(self) -> tuple[str | None, int]:
        """(what is wrong or None, the number of images or labels)."""
        official = OFFICIAL.get(self.name)
        if official is not None and self.size == official[0]:
            if self.sha256.hexdigest() != official[1]:
                return "its checksum differs from the official file's", 0
            return None, 60000 if self.name.startswith("train") else 10000
        ndim, magic = (3, 0x803) if self.images else (1, 0x801)
        header = 4 + 4 * ndim
        if self.size < header or int.from_bytes(self.head[:4], "big") != magic:
            return f"it does not start like an IDX {'image' if self.images else 'label'} file", 0
        dims = [int.from_bytes(self.head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        if self.images and dims[1:] != [28, 28]:
            return f"its images are {dims[1]}x{dims[2]} pixels, not 28x28", 0
        expected = header + math.prod(dims)
        if self.size != expected:
            return f"it has {self.size} bytes where its header promises {expected}", 0
        if self.largest_label > 9:
            return f"it holds the label {self.largest_label}, but labels go from 0 to 9", 0
        return None, dims[0]


def file_problem(path: Path) -> tuple[str | None, int]:
    """Check an unpacked Fashion-MNIST file; return (what is wrong or None, its number of images or labels)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _checked:
        checker = _Checker(path.name)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                checker.update(chunk)
        _checked[key] = checker.result()
    return _checked[key]


def _unpack(gz: Path, path: Path, problem: str | None) -> int:
    """Write ``path`` from ``gz`` in one step, checked as it streams; return its number of images or labels."""
    checker = _Checker(path.name)
    what = f"{path.resolve()} is damaged ({problem}) and" if problem else f"{path.name} is missing and"
    try:
        with atomic_write(path) as out, gzip.open(gz, "rb") as src:
            for chunk in iter(lambda: src.read(1 << 22), b""):
                checker.update(chunk)
                out.write(chunk)
            wrong, count = checker.result()
            if wrong is not None:
                raise _BadArchive(f"what it holds is not the official file: {wrong}")
    except (_BadArchive, gzip.BadGzipFile, EOFError, zlib.error) as exc:  # BadGzipFile before OSError: it is one
        raise DatasetDamagedError(
            f"{what} cannot be restored: {gz.resolve()} is damaged too ({exc}). Delete {gz.name} and run again "
            f"with internet access to download it, or copy the official file from {RELEASE_URL}."
        ) from None
    except OSError as exc:
        if exc.errno in _READ_ONLY:
            raise (DatasetDamagedError if problem else DatasetMissingError)(
                _read_only_message(path.parent, f"{what} cannot be restored from {gz.name}")
            ) from None
        raise
    stat = path.stat()
    _checked[(str(path.resolve()), stat.st_size, stat.st_mtime_ns)] = (None, count)
    return count


class _BadArchive(Exception):
    pass


def _download(root: Path, raw_dir: Path, mirror: str | Sequence[str] | None = None) -> None:
    """Download the missing .gz files (verified) or raise DatasetMissingError, leaving nothing partial behind."""
    sources = all_sources(mirror)  # a malformed mirror is reported before anything is created
    new_dirs = []  # the folders this call may create, deepest first
    folder = raw_dir
    while not folder.exists() and folder != folder.parent:
        new_dirs.append(folder)
        folder = folder.parent
    if not folder.is_dir():
        raise DatasetMissingError(
            f"Fashion-MNIST cannot be stored in {raw_dir.resolve()}: {folder.resolve()} is a file, not a folder. "
            "Give data_root the folder that holds (or should hold) FashionMNIST/raw."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatasetMissingError(
            _read_only_message(folder, f"Fashion-MNIST is not in {raw_dir.resolve()} and cannot be downloaded there")
        )
    existed = set(raw_dir.iterdir()) if raw_dir.is_dir() else set()
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # also for anything urllib opens without a timeout
    try:
        raw_dir.mkdir(parents=True, exist_ok=True)
        download_raw(raw_dir, sources=sources)
    except DownloadError as exc:
        _remove_partial(raw_dir, existed, new_dirs)
        raise DatasetMissingError(_missing_message(raw_dir, "every source failed") + "\n" + str(exc)) from None
    except OSError as exc:
        _remove_partial(raw_dir, existed, new_dirs)
        if exc.errno in _READ_ONLY:
            raise DatasetMissingError(
                _read_only_message(
                    folder, f"Fashion-MNIST is not in {raw_dir.resolve()} and cannot be downloaded there"
                )
            ) from None
        raise
    except BaseException:
        _remove_partial(raw_dir, existed, new_dirs)
        raise
    finally:
        socket.setdefaulttimeout(old_timeout)


# --- downloading from the official sources and mirrors -------------------------------------------------


class DownloadError(RuntimeError):
    """No source gave a verified copy of a file; the message lists every source tried and why."""


class _WrongFile(Exception):
    """The source answered, but with bytes that are not the official file."""


def check_mirror(url: str, origin: str = "mirror") -> str:
    """Return ``url`` as a base URL ending in "/"; ValueError for anything but a plain http(s) URL.

    Only http and https are accepted (no file:, ftp:, ...); a URL with a user name
    or password is refused without repeating it, so a secret never reaches a log.
    """
    text = str(url).strip()
    if not text.isprintable():  # escape sequences, bidi overrides: the URL is printed ("sources in order")
        raise ValueError(
            f"{origin}: {_printable(_redact(text))!r} holds control characters; give a plain "
            "base URL such as http://192.168.1.10:8000/"
        )
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ValueError(
            f"{origin}: {_redact(text)!r} is not a valid URL; give a base URL such as http://192.168.1.10:8000/"
        ) from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{origin}: a mirror URL must not hold a user name or password ({_redact(text)!r}); give a URL without them"
        )
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{origin}: {_redact(text)!r} is not an http:// or https:// URL; give a base URL "
            "such as http://192.168.1.10:8000/ that holds the four .gz files"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{origin}: {_redact(text)!r} has a ?query or #fragment; give the folder's URL only")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def _printable(text: str) -> str:
    """``text`` with every character that is not printable (escape sequences, bidi overrides) as an escape."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _redact(text: str) -> str:
    """``text`` with anything between "//" and "@" hidden (user name and password)."""
    return re.sub(r"//[^/@]*@", "//***@", text)


def parse_mirrors(value: str | Sequence[str] | None, origin: str = "mirror") -> list[str]:
    """Base URLs from a string of URLs separated by spaces or commas, or from a list of such strings."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    urls = [u for item in items for u in re.split(r"[\s,]+", str(item)) if u]
    return [check_mirror(u, origin) for u in urls]


def all_sources(mirror: str | Sequence[str] | None = None, official: bool = True) -> list[str]:
    """The base URLs tried in order: the official ones, then ``mirror``, then $HELPERS_DATA_MIRROR."""
    sources = list(OFFICIAL_SOURCES) if official else []
    sources += parse_mirrors(mirror, "mirror")
    sources += parse_mirrors(os.environ.get(MIRROR_ENV), MIRROR_ENV)
    unique = list(dict.fromkeys(sources))
    if not unique:
        raise ValueError(f"no source to download from: give a mirror (--mirror URL or {MIRROR_ENV})")
    return unique


def _fetch(url: str, dest: Path, size: int, sha256: str, progress: Callable | None = None) -> None:
    """Stream ``url`` into a temporary file next to ``dest``; it takes ``dest``'s name only once verified.

    Raises _WrongFile (too long, too short, other checksum) or the network error;
    either way the temporary file is gone.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    bar = None
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "pytorch-basics-zh"})
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
                bar = progress(dest.name, size) if progress is not None else None
                digest, received = hashlib.sha256(), 0
                while True:
                    chunk = response.read(1 << 16)
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > size:
                        raise _WrongFile(f"it is larger than the official {size} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            if received < size:
                raise _WrongFile(f"truncated: {received} of {size} bytes")
            if digest.hexdigest() != sha256:
                raise _WrongFile("its SHA-256 differs from the official file's")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except http.client.IncompleteRead as exc:
        raise _WrongFile(f"truncated: the connection closed after {len(exc.partial)} more bytes") from None
    finally:
        if bar is not None:
            bar.close()
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _umask() -> int:
    from .files import current_umask

    return current_umask()


def _why(exc: BaseException) -> str:
    """One line saying why a source failed; what the server sent (its reason phrase) cannot move the cursor."""
    return _printable(_why_raw(exc))


def _why_raw(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
        if not isinstance(exc, BaseException):
            return str(exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {DOWNLOAD_TIMEOUT_S:g} s"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[-1]


def download_raw(
    raw_dir: str | Path,
    mirror: str | Sequence[str] | None = None,
    *,
    sources: Iterable[str] | None = None,
    official: bool = True,
    expected: dict | None = None,
    progress: Callable | None = None,
    report: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Download every .gz of ``expected`` (default ``OFFICIAL_GZ``) missing from ``raw_dir``; return name -> URL.

    Sources are tried in order (default: ``all_sources(mirror, official)``). Each
    file streams to a temporary file in ``raw_dir`` and is renamed into place only
    when its size and SHA-256 match; a source that serves a wrong or truncated file
    is named through ``report`` (default: a line on stderr) and the next source is
    tried. A source that cannot be reached (refused, no answer within
    ``DOWNLOAD_TIMEOUT_S``) is not asked again for the other files. When a file
    cannot be had from any source, raises DownloadError listing each source and
    why; the files already verified stay, nothing partial does. ``progress(name,
    size)``, if given, returns a bar with ``update(n)`` and ``close()``.
    """
    raw_dir = Path(raw_dir)
    expected = OFFICIAL_GZ if expected is None else expected
    sources = all_sources(mirror, official) if sources is None else list(sources)
    report = report or (lambda line: print(line, file=sys.stderr, flush=True))
    unreachable: dict[str, str] = {}
    got: dict[str, str] = {}
    for name, (size, sha256) in expected.items():
        dest = raw_dir / name
        if dest.is_file():
            continue
        failures = []
        for base in sources:
            url = urllib.parse.urljoin(base, name)
            if base in unreachable:
                failures.append(f"{url}: skipped, {unreachable[base]} earlier")
                continue
            try:
                _fetch(url, dest, size, sha256, progress)
            except _WrongFile as exc:
                failures.append(f"{url}: served a wrong file ({exc})")
                report(f"refused {url}: {exc}; trying the next source")
                continue
            except urllib.error.HTTPError as exc:  # the server answered: maybe only this file is missing
                failures.append(f"{url}: {_why(exc)}")
                continue
            except (
                urllib.error.URLError,
                http.client.HTTPException,
                ConnectionError,
                TimeoutError,
                socket.gaierror,
            ) as exc:
                unreachable[base] = _why(exc)
                failures.append(f"{url}: {unreachable[base]}")
                continue
            except OSError as exc:
                if exc.errno in _READ_ONLY or isinstance(exc, PermissionError):
                    raise
                unreachable[base] = _why(exc)
                failures.append(f"{url}: {unreachable[base]}")
                continue
            got[name] = url
            break
        else:
            tried = "\n".join(f"  - {line}" for line in failures)
            raise DownloadError(
                f"{name} could not be downloaded from any source:\n{tried}\n"
                f"What to do: set {MIRROR_ENV} to a mirror that holds the four .gz files (or the URL your "
                "teacher's `python -m helpers data --serve` prints), or copy the four files into "
                f"{raw_dir.resolve()} by hand; then run the same code again.\n"
                f"怎么办：把 {MIRROR_ENV} 设为存有这四个 .gz 文件的镜像地址（或老师运行 "
                f"`python -m helpers data --serve` 时显示的地址），或者手动把这四个文件复制到 "
                f"{raw_dir.resolve()}，然后重新运行。"
            )
    return got


def check_raw(raw_dir: str | Path, expected: dict | None = None) -> dict[str, str | None]:
    """Check the .gz files in ``raw_dir`` against ``expected`` (default ``OFFICIAL_GZ``): name -> problem or None."""
    raw_dir = Path(raw_dir)
    expected = OFFICIAL_GZ if expected is None else expected
    problems: dict[str, str | None] = {}
    for name, (size, sha256) in expected.items():
        path = raw_dir / name
        if not path.is_file():
            problems[name] = "missing"
            continue
        actual = path.stat().st_size
        if actual != size:
            problems[name] = f"{actual} bytes where the official file has {size}"
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
        problems[name] = None if digest.hexdigest() == sha256 else "its SHA-256 differs from the official file's"
    return problems


def _remove_partial(raw_dir: Path, existed: set, new_dirs: list[Path]) -> None:
    """Delete what a failed download created: partial files and the folders made for them.

    A .gz that took its name was verified first: it stays, so the next try fetches only the rest.
    """
    if raw_dir.is_dir():
        for path in raw_dir.iterdir():
            if path not in existed and path.is_file() and path.name not in RAW_FILES:
                path.unlink()
    for folder in new_dirs:  # deepest first; a folder someone else filled meanwhile stays
        try:
            folder.rmdir()
        except OSError:
            pass
