import stat

import pytest

from helpers import atomic_write


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
