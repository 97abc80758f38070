import os
import stat

import pytest

from helpers import atomic_write, files


def test_atomic_write_replaces_the_file_in_one_step(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("old")
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write("新内容")
        assert path.read_text() == "old", "the target is untouched until the block ends"
    assert path.read_text(encoding="utf-8") == "新内容"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_atomic_write_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_atomic_write_creates_nothing_on_failure(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "new.bin"):
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def test_atomic_write_keeps_a_private_file_private(tmp_path, umask):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"old")
    path.chmod(0o600)
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "a private file must not become world-readable"
    path.chmod(0o640)
    with atomic_write(path) as f:
        f.write(b"newer")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("mask, expected", [(0o077, 0o600), (0o027, 0o640), (0o022, 0o644)])
def test_atomic_write_honours_the_umask_for_a_new_file(tmp_path, umask, mask, expected):
    umask(mask)
    with atomic_write(tmp_path / "new.bin") as f:
        f.write(b"x")
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == expected
    assert files.current_umask() == mask, "reading the umask must not change it"


def test_atomic_write_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    source = tmp_path / "source.ipynb"
    source.write_text("the source")
    link = tmp_path / "out.ipynb"
    link.symlink_to(source)
    with atomic_write(link, "w", encoding="utf-8") as f:
        f.write("the output")
    assert source.read_text() == "the source"
    assert not link.is_symlink() and link.read_text() == "the output"


def test_atomic_write_to_a_folder_says_so(tmp_path):
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        with atomic_write(tmp_path):
            pass
    assert list(tmp_path.iterdir()) == []
