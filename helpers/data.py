"""Fashion-MNIST: the class names and a loader that checks the files and gives a clear error when offline."""

from __future__ import annotations

import errno
import gzip
import hashlib
import math
import os
import socket
import zlib
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torchvision import datasets
from torchvision.transforms import ToTensor

from .files import atomic_write
from .params import check_parameter

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
DOWNLOAD_TIMEOUT_S = 10.0
RELEASE_URL = "https://github.com/zalandoresearch/fashion-mnist"
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)
_checked: dict[tuple[str, int, int], tuple[Optional[str], int]] = {}  # (path, size, mtime) -> (problem, count)


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


def fashion_mnist(
    root: str | Path = "data",
    train: bool = True,
    transform: Optional[Callable] = ToTensor(),
    target_transform: Optional[Callable] = None,
    download: bool = True,
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
    stay the same. When the files are missing and cannot be downloaded, raises
    DatasetMissingError within seconds, naming the folder and the four files that
    belong there, and leaves nothing new on disk.
    """
    root = Path(root)
    raw_dir = root / "FashionMNIST" / "raw"
    missing = _prepare(raw_dir, train)
    if missing:
        if not download:
            raise DatasetMissingError(_missing_message(raw_dir, "download=False"))
        _download(root, raw_dir)
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
            self.largest_label = max(self.largest_label, max(chunk[max(0, 8 - self.size):]))
        self.size += len(chunk)

    def result(self) -> tuple[Optional[str], int]:
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
        dims = [int.from_bytes(self.head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        if self.images and dims[1:] != [28, 28]:
            return f"its images are {dims[1]}x{dims[2]} pixels, not 28x28", 0
        expected = header + math.prod(dims)
        if self.size != expected:
            return f"it has {self.size} bytes where its header promises {expected}", 0
        if self.largest_label > 9:
            return f"it holds the label {self.largest_label}, but labels go from 0 to 9", 0
        return None, dims[0]


def file_problem(path: Path) -> tuple[Optional[str], int]:
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


def _unpack(gz: Path, path: Path, problem: Optional[str]) -> int:
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


def _download(root: Path, raw_dir: Path) -> None:
    """Download (torchvision checks the .gz md5 sums) or raise DatasetMissingError, leaving nothing new behind."""
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
        raise DatasetMissingError(_read_only_message(folder, f"Fashion-MNIST is not in {raw_dir.resolve()} "
                                                             "and cannot be downloaded there"))
    existed = set(raw_dir.iterdir()) if raw_dir.is_dir() else set()
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # fail fast when the network is unreachable
    try:
        datasets.FashionMNIST(root=str(root), train=True, download=True)
    except Exception as exc:  # urllib raises several kinds; all mean "no files"
        _remove_partial(raw_dir, existed, new_dirs)
        cause = exc
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, OSError) and cause.errno in _READ_ONLY:
            raise DatasetMissingError(_read_only_message(folder, f"Fashion-MNIST is not in {raw_dir.resolve()} "
                                                                 "and cannot be downloaded there")) from None
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatasetMissingError(_missing_message(raw_dir, reason)) from None
    finally:
        socket.setdefaulttimeout(old_timeout)


def _remove_partial(raw_dir: Path, existed: set, new_dirs: list[Path]) -> None:
    """Delete what a failed download created: partial files and the folders made for them."""
    if raw_dir.is_dir():
        for path in raw_dir.iterdir():
            if path not in existed and path.is_file():
                path.unlink()
    for folder in new_dirs:  # deepest first; a folder someone else filled meanwhile stays
        try:
            folder.rmdir()
        except OSError:
            pass


def load_tensors(
    root: str | Path = "data",
    train: bool = True,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return Fashion-MNIST as two tensors on ``device``: X [N, 1, 28, 28] float32 in [0, 1], y [N] int64.

    X holds the same values as ``ToTensor()`` gives image by image (pixel / 255),
    converted once for the whole set instead of once per sample and epoch.
    """
    dataset = fashion_mnist(root, train=train, transform=None)
    X = dataset.data.unsqueeze(1).to(device).float().div_(255)  # uint8 crosses to the device: 4x fewer bytes
    y = dataset.targets.to(device)
    return X, y


class TensorLoader:
    """Minibatches (X[i], y[i]) of tensors already in memory: a minimal DataLoader without per-sample work.

    With ``shuffle=True`` each pass uses a new order drawn from ``generator``
    (a seeded ``torch.Generator`` on the CPU makes the order reproducible).
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        batch_size: int = 64,
        shuffle: bool = False,
        generator: Optional[torch.Generator] = None,
    ):
        if len(X) != len(y):
            raise ValueError(f"X and y must have the same length; got {len(X)} and {len(y)}")
        check_parameter("batch_size", batch_size, int, minimum=1)
        self.X, self.y = X, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)  # number of batches, the last one may be smaller

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        if self.shuffle:
            # drawn on the CPU, then moved: the same order on every device
            order = torch.randperm(n, generator=self.generator).to(self.y.device)
            for start in range(0, n, self.batch_size):
                index = order[start:start + self.batch_size]
                yield self.X[index], self.y[index]
        else:
            for start in range(0, n, self.batch_size):
                yield self.X[start:start + self.batch_size], self.y[start:start + self.batch_size]
