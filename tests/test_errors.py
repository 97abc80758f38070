"""One way to fail: every command turns a CommandError into ``error: ...`` on stderr and the same exit code."""

from __future__ import annotations

import pytest

from helpers.__main__ import main
from helpers.commands.errors import FAILED, USAGE, CommandError, reports_errors


def test_reports_errors_prints_the_message_and_returns_the_code(capsys):
    @reports_errors
    def command(argv):
        raise CommandError(f"cannot use {argv[0]!r}; give a folder", FAILED)

    assert command(["x"]) == FAILED
    assert capsys.readouterr().err == "error: cannot use 'x'; give a folder\n"


def test_other_exceptions_are_not_swallowed():
    @reports_errors
    def command(argv):
        raise KeyError("a bug, not a user's mistake")

    with pytest.raises(KeyError):
        command([])


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--notebooks", "{missing}", "--out", "{tmp}/out"],
        ["refresh", "--notebooks", "{missing}"],
        ["student", "--notebooks", "{missing}", "--out", "{tmp}/out"],
        ["html", "--notebooks", "{missing}", "--out", "{tmp}/out"],
        ["check", "{tmp}/class", "--notebooks", "{missing}", "--out", "{tmp}/out"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_missing_notebooks_folder_fails_the_same_way_in_every_command(tmp_path, capsys, argv):
    (tmp_path / "class").mkdir()
    argv = [a.format(missing=tmp_path / "no-such-folder", tmp=tmp_path) for a in argv]
    assert main(argv) == USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-such-folder" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
