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


# ----------------------------------------------------------------- check refuses what it cannot use, before any kernel
def _class(tmp_path):
    (tmp_path / "class" / "anna").mkdir(parents=True)
    (tmp_path / "class" / "anna" / "01_tensors.ipynb").write_text("{}", encoding="utf-8")
    return tmp_path / "class"


@pytest.mark.parametrize("limit", ["nan", "inf", "-1"])
def test_check_refuses_a_time_limit_that_is_not_a_positive_number(tmp_path, capsys, limit):
    assert main(["check", str(_class(tmp_path)), "--timeout", limit, "--out", str(tmp_path / "out")]) == USAGE
    assert "must be positive" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_check_refuses_a_parameter_value_the_lesson_refuses(tmp_path, capsys):
    """`run` refuses `-p epochs 0` before anything runs; so does `check`, instead of running the class with it."""
    assert main(["check", str(_class(tmp_path)), "-p", "epochs", "0", "--out", str(tmp_path / "out")]) == USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "epochs" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_check_refuses_an_out_folder_that_holds_the_submissions(tmp_path, capsys):
    assert main(["check", str(_class(tmp_path)), "--out", str(tmp_path)]) == USAGE
    assert "contains the submissions folder" in capsys.readouterr().err


def test_check_never_deletes_files_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "executed").mkdir(parents=True)
    (out / "executed" / "precious.txt").write_text("the teacher's notes", encoding="utf-8")
    assert main(["check", str(_class(tmp_path)), "--out", str(out)]) == USAGE
    assert "precious.txt" in capsys.readouterr().err
    assert (out / "executed" / "precious.txt").read_text(encoding="utf-8") == "the teacher's notes"


@pytest.mark.parametrize("damage", ["{not json", '{"nbformat": 5, "cells": 3}'])
def test_check_says_which_lessons_cannot_be_read(tmp_path, capsys, damage):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    (lessons / "01_tensors.ipynb").write_text(damage, encoding="utf-8")
    argv = ["check", str(_class(tmp_path)), "--notebooks", str(lessons), "--out", str(tmp_path / "out")]
    assert main(argv) == USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: the lesson ") and "01_tensors.ipynb cannot be read" in err and "Traceback" not in err


def test_an_os_error_in_a_command_is_one_line(capsys):
    @reports_errors
    def command(argv):
        raise PermissionError(13, "Permission denied", "/somewhere/results.csv")

    assert command([]) == FAILED
    assert capsys.readouterr().err == "error: [Errno 13] Permission denied: '/somewhere/results.csv'\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--onl", "01"],
        ["refresh", "--onl", "01"],
        ["student", "--out", "x", "--onl", "01"],
        ["html", "--hide", "--out", "x"],
        ["check", "class", "--no-re"],
        ["bench", "--devic", "cpu"],
        ["data", "--serv"],
    ],
    ids=lambda argv: argv[0],
)
def test_an_abbreviated_option_is_an_error_not_a_guess(capsys, argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == USAGE
    assert "unrecognized arguments" in capsys.readouterr().err


# ----------------------------------------------------------------- damaged lessons, odd --out folders, nothing half-written
@pytest.fixture
def damaged_series(tmp_path):
    """01 is a good notebook, 02 is not JSON, 03 is JSON whose cells are not a list."""
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook

    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(new_notebook(cells=[new_markdown_cell("# 01 Good\n\nfine")]), folder / "01_good.ipynb")
    (folder / "02_bad.ipynb").write_text("{not json", encoding="utf-8")
    (folder / "03_bad.ipynb").write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": 3}')
    return folder


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--out", "{tmp}/out"],
        ["run", "--out", "{tmp}/out", "--only", "03"],
        ["refresh", "--metadata-only"],
        ["refresh", "--metadata-only", "--only", "03"],
        ["student", "--out", "{tmp}/out"],
        ["html", "--out", "{tmp}/out"],
    ],
    ids=lambda argv: "-".join(a.strip("-{}/") for a in argv),
)
def test_a_damaged_lesson_is_named_and_nothing_is_written(damaged_series, tmp_path, capsys, argv):
    before = {p.name: p.read_bytes() for p in damaged_series.iterdir()}
    argv = [argv[0], "--notebooks", str(damaged_series), *[a.format(tmp=tmp_path) for a in argv[1:]]]
    assert main(argv) == USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not a readable notebook" in err and "Traceback" not in err
    assert ("03_bad" if "03" in argv else "02_bad") in err
    assert not (tmp_path / "out").exists()  # not even 01's page or student edition
    assert {p.name: p.read_bytes() for p in damaged_series.iterdir()} == before  # metadata of 01 untouched too


@pytest.mark.parametrize("command", ["run", "student", "html"])
def test_an_out_folder_in_a_loop_of_links_is_one_sentence(tmp_path, capsys, command):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert main([command, "--out", str(tmp_path / "a" / "x"), "--only", "01"]) == USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: cannot use --out") and "Traceback" not in err
