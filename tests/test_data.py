import errno
import gzip
import hashlib
import os
import re
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from conftest import DATA_ROOT, needs_data, write_fake_fashion_mnist
from helpers import CLASSES, CLASSES_ZH, RAW_FILES, DatasetMissingError, data, fashion_mnist, files
from helpers.data import DatasetDamagedError


def test_class_names():
    assert len(CLASSES) == len(CLASSES_ZH) == 10
    assert CLASSES[0] == "T-shirt/top" and CLASSES[9] == "Ankle boot"
    assert CLASSES_ZH == ("T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "短靴")


@needs_data
def test_offline_with_files_in_place(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the files are on disk: nothing should be downloaded")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    train = fashion_mnist(DATA_ROOT, train=True)
    test = fashion_mnist(DATA_ROOT, train=False)
    assert (len(train), len(test)) == (60_000, 10_000)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert 0 <= label < 10


def _offline(monkeypatch, seen_timeouts=None):
    def refuse(*args, **kwargs):
        if seen_timeouts is not None:
            seen_timeouts.append(socket.getdefaulttimeout())
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_missing_files_and_no_network_gives_a_clear_error_fast(tmp_path, monkeypatch):
    seen = []
    _offline(monkeypatch, seen)
    root = tmp_path / "data"
    start = time.perf_counter()
    with pytest.raises(DatasetMissingError) as info:
        fashion_mnist(root)
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert str((root / "FashionMNIST" / "raw").resolve()) in message
    for name in RAW_FILES:
        assert name in message
    assert "download" in message and "Name or service not known" in message
    assert seen and all(t is not None and t <= 10 for t in seen), "downloads must not hang without a timeout"
    assert socket.getdefaulttimeout() is None, "the global socket timeout must be restored"
    assert not root.exists(), "a failed download must not leave folders behind"


def test_partial_download_is_removed(tmp_path, monkeypatch):
    class HalfAnswer:  # sends some bytes, then the connection drops
        def __init__(self):
            self.chunks = [b"\x1f\x8b partial"]

        def read(self, n=-1):
            if self.chunks:
                return self.chunks.pop()
            raise ConnectionResetError(104, "Connection reset by peer")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: HalfAnswer())
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "keep-me.txt").write_text("the user's own file")
    with pytest.raises(DatasetMissingError, match="Connection reset by peer"):
        fashion_mnist(tmp_path)
    assert sorted(p.name for p in raw.iterdir()) == ["keep-me.txt"]


def test_download_false_does_not_touch_the_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download=False must not download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DatasetMissingError, match="download=False"):
        fashion_mnist(tmp_path, download=False)


# --- damaged files are noticed, restored from an intact .gz, or named in the error -------------------

REAL_RAW = DATA_ROOT / "FashionMNIST" / "raw"
LABELS = "t10k-labels-idx1-ubyte"


def real_copy(tmp_path, copied=(LABELS, LABELS + ".gz"), linked=None) -> Path:
    """A data root whose raw folder links to the real files, with ``copied`` ones as private copies."""
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    names = [n[:-3] for n in RAW_FILES] + list(RAW_FILES)
    for name in names:
        if name in copied:
            shutil.copyfile(REAL_RAW / name, raw / name)
        elif linked is None or name in linked:
            (raw / name).symlink_to(REAL_RAW / name)
    return tmp_path / "data"


def flip_label(path: Path, index: int = 5, value: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[8 + index] = value  # after the 8-byte header: the label of image `index`
    path.write_bytes(bytes(data))


@needs_data
def test_a_damaged_unpacked_file_is_restored_from_its_intact_gz(tmp_path, monkeypatch):
    _offline(monkeypatch)
    root = real_copy(tmp_path)
    labels = root / "FashionMNIST" / "raw" / LABELS
    flip_label(labels)
    test = fashion_mnist(root, train=False)
    assert int(test.targets.max()) <= 9, "a damaged label file must never be used"
    assert labels.read_bytes() == (REAL_RAW / LABELS).read_bytes()
    assert not list(labels.parent.glob(".*.tmp"))


@needs_data
def test_a_damaged_file_without_a_gz_is_named_in_the_error(tmp_path, monkeypatch):
    _offline(monkeypatch)
    root = real_copy(tmp_path, copied=(LABELS,), linked=[n for n in os.listdir(REAL_RAW) if n != LABELS + ".gz"])
    labels = root / "FashionMNIST" / "raw" / LABELS
    flip_label(labels)
    with pytest.raises(DatasetDamagedError) as info:
        fashion_mnist(root, train=False)
    message = str(info.value)
    assert f"{labels.resolve()} is damaged (its checksum differs from the official file's)" in message
    assert f"no {LABELS}.gz next to it" in message and "missing" not in message
    assert isinstance(info.value, DatasetMissingError), "code that catches DatasetMissingError still catches it"


@needs_data
def test_a_damaged_file_and_a_damaged_gz_say_so(tmp_path, monkeypatch):
    _offline(monkeypatch)
    root = real_copy(tmp_path)
    raw = root / "FashionMNIST" / "raw"
    flip_label(raw / LABELS)
    gz = raw / (LABELS + ".gz")
    gz.write_bytes(gz.read_bytes()[:-100])  # cut short
    before = (raw / LABELS).read_bytes()
    with pytest.raises(
        DatasetDamagedError,
        match=rf"{LABELS} is damaged .* cannot be restored: .*{LABELS}.gz is "
        rf"damaged too .*Delete {LABELS}.gz and run again",
    ):
        fashion_mnist(root, train=False)
    assert (raw / LABELS).read_bytes() == before and not list(raw.glob(".*.tmp"))


@needs_data
def test_a_damaged_file_in_a_read_only_folder_says_read_only(tmp_path, monkeypatch):
    _offline(monkeypatch)
    root = real_copy(tmp_path)
    labels = root / "FashionMNIST" / "raw" / LABELS
    flip_label(labels)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    with pytest.raises(
        DatasetDamagedError,
        match=rf"{LABELS} is damaged .* cannot be restored from {LABELS}.gz: "
        r"the folder .* is read-only\. Make it writable",
    ):
        fashion_mnist(root, train=False)


def test_a_label_out_of_range_is_noticed_in_any_dataset(tmp_path, monkeypatch):
    """A dataset of another size (the tests' tiny one) is checked for a well-formed layout instead of checksums."""
    _offline(monkeypatch)
    root = write_fake_fashion_mnist(tmp_path)
    raw = root / "FashionMNIST" / "raw"
    intact = (raw / LABELS).read_bytes()
    flip_label(raw / LABELS)
    assert int(fashion_mnist(root, train=False).targets.max()) <= 9  # restored from the .gz
    assert (raw / LABELS).read_bytes() == intact
    flip_label(raw / LABELS)
    (raw / (LABELS + ".gz")).unlink()
    with pytest.raises(DatasetDamagedError, match="it holds the label 200, but labels go from 0 to 9"):
        fashion_mnist(root, train=False)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-28], "it has 21940 bytes where its header promises 21968"),
        (lambda b: b + b"\0", "it has 21969 bytes where its header promises 21968"),
        (lambda b: b"\0\0\x08\x01" + b[4:], "it does not start like an IDX image file"),
        (lambda b: b[:8] + (14).to_bytes(4, "big") + b[12:], "its images are 14x28 pixels, not 28x28"),
    ],
)
def test_a_malformed_image_file_is_named(tmp_path, monkeypatch, damage, message):
    _offline(monkeypatch)
    root = write_fake_fashion_mnist(tmp_path, n_test=28)
    images = root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(damage(images.read_bytes()))
    (images.parent / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DatasetDamagedError, match=re.escape(message)):
        fashion_mnist(root, train=False)


def test_images_and_labels_must_belong_together(tmp_path, monkeypatch):
    _offline(monkeypatch)
    small = write_fake_fashion_mnist(tmp_path / "small", n_test=20)
    root = write_fake_fashion_mnist(tmp_path / "big", n_test=30)
    shutil.copyfile(small / "FashionMNIST" / "raw" / LABELS, root / "FashionMNIST" / "raw" / LABELS)
    (root / "FashionMNIST" / "raw" / (LABELS + ".gz")).unlink()
    with pytest.raises(DatasetDamagedError, match="holds 30 t10k images but 20 labels"):
        fashion_mnist(root, train=False)


def test_a_missing_unpacked_file_is_unpacked_from_its_gz_without_the_network(tmp_path, monkeypatch):
    _offline(monkeypatch)
    root = write_fake_fashion_mnist(tmp_path)
    raw = root / "FashionMNIST" / "raw"
    for name in RAW_FILES:
        (raw / name[:-3]).unlink()
    assert len(fashion_mnist(root, train=True)) == 96
    assert all((raw / name[:-3]).is_file() for name in RAW_FILES)


def test_a_damaged_gz_is_called_damaged_not_missing(tmp_path, monkeypatch):
    _offline(monkeypatch)
    root = write_fake_fashion_mnist(tmp_path)
    raw = root / "FashionMNIST" / "raw"
    (raw / LABELS).unlink()
    (raw / (LABELS + ".gz")).write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(DatasetDamagedError) as info:
        fashion_mnist(root, train=False)
    message = str(info.value)
    assert message.startswith(f"{LABELS} is missing and cannot be restored: {(raw / LABELS).resolve()}.gz is damaged")
    assert "not in" not in message
    assert not (raw / LABELS).exists() and not list(raw.glob(".*.tmp"))


def test_checked_files_are_not_read_again_while_unchanged(tmp_path, monkeypatch):
    root = write_fake_fashion_mnist(tmp_path)
    created = []
    monkeypatch.setattr(
        data._Checker,
        "__init__",
        lambda self, name, real=data._Checker.__init__: (created.append(name), real(self, name))[1],
    )
    fashion_mnist(root, train=True)
    fashion_mnist(root, train=True)
    assert sorted(created) == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    labels = root / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 10**9))
    fashion_mnist(root, train=True)
    assert created.count("train-labels-idx1-ubyte") == 2, "a file that changed is checked again"


@needs_data
def test_the_official_checksums_match_the_files_torchvision_verifies():
    from torchvision.datasets import FashionMNIST

    for gz_name, md5 in FashionMNIST.resources:
        gz = REAL_RAW / gz_name
        assert hashlib.md5(gz.read_bytes()).hexdigest() == md5
        unpacked = gzip.decompress(gz.read_bytes())
        size, sha256 = data.OFFICIAL[gz_name[:-3]]
        assert (len(unpacked), hashlib.sha256(unpacked).hexdigest()) == (size, sha256)
        gz_size, gz_sha256 = data.OFFICIAL_GZ[gz_name]  # what downloads are checked against
        assert (gz.stat().st_size, hashlib.sha256(gz.read_bytes()).hexdigest()) == (gz_size, gz_sha256)
    assert list(data.OFFICIAL_GZ) == [name for name, _ in FashionMNIST.resources] == list(RAW_FILES)
    assert data.OFFICIAL_SOURCES == tuple(FashionMNIST.mirrors)


# --- nothing new remains when the data cannot be had --------------------------------------------------


def test_a_wrong_relative_root_leaves_no_empty_folders(tmp_path, monkeypatch):
    _offline(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notebooks").mkdir()
    with pytest.raises(DatasetMissingError):
        fashion_mnist(Path("notebooks") / "dta" / "deeper" / "data")
    assert [p.name for p in tmp_path.rglob("*")] == ["notebooks"]


def test_a_read_only_folder_is_named_before_any_download(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("nothing can be saved there: nothing should be downloaded")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(data.os, "access", lambda path, mode: False)
    with pytest.raises(DatasetMissingError, match=r"cannot be downloaded there: the folder .* is read-only"):
        fashion_mnist(tmp_path / "data")
    assert list(tmp_path.iterdir()) == []


def test_a_download_refused_by_the_file_system_says_read_only(tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))

    def no_network(*args, **kwargs):
        raise AssertionError("nothing can be saved: nothing should be downloaded")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(data.tempfile, "mkstemp", refused)
    with pytest.raises(DatasetMissingError, match="is read-only"):
        fashion_mnist(tmp_path / "data")
    assert list(tmp_path.iterdir()) == []


def test_a_data_root_that_is_a_file_says_so(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(DatasetMissingError, match=r"data is a file, not a folder\. Give data_root the folder"):
        fashion_mnist(tmp_path / "data")
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
