import socket
import time
import urllib.error
import urllib.request

import pytest
import torch

from conftest import DATA_ROOT, needs_data
from helpers import CLASSES, CLASSES_ZH, RAW_FILES, DatasetMissingError, fashion_mnist


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
    import torchvision.datasets.utils as tv_utils

    def half_written(url, filename, *args, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"\x1f\x8b partial")
        raise urllib.error.URLError("connection reset")

    monkeypatch.setattr(tv_utils, "_urlretrieve", half_written)
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "keep-me.txt").write_text("the user's own file")
    with pytest.raises(DatasetMissingError):
        fashion_mnist(tmp_path)
    assert sorted(p.name for p in raw.iterdir()) == ["keep-me.txt"]


def test_download_false_does_not_touch_the_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download=False must not download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DatasetMissingError, match="download=False"):
        fashion_mnist(tmp_path, download=False)
