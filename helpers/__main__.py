"""Command line: ``python -m helpers COMMAND``."""

from __future__ import annotations

import importlib
import os
import sys

from helpers.commands.errors import CommandError

# command -> (module, function, one-line help); each function takes argv and returns an exit code
COMMANDS = {
    "run": ("helpers.commands.runner", "run_main", "execute every notebook in order (papermill) into runs/"),
    "refresh": (
        "helpers.commands.runner",
        "refresh_main",
        "re-execute the notebooks in place on the CPU (stored outputs)",
    ),
    "bench": ("helpers.commands.bench", "main", "time the plain and the fast training recipes side by side"),
    "student": ("helpers.commands.classroom", "student_main", "write the student edition (solutions removed)"),
    "html": ("helpers.commands.classroom", "html_main", "write self-contained HTML handouts and an index"),
    "check": ("helpers.commands.check", "main", "run the students' submitted notebooks and mark every exercise"),
    "data": ("helpers.commands.data", "main", "download, verify (--check) or serve (--serve) Fashion-MNIST"),
    "lab": ("helpers.commands.lab", "main", "open the notebooks in JupyterLab with the project's settings"),
}


def usage() -> str:
    lines = ["usage: python -m helpers COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "python -m helpers COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run one command; Ctrl-C anywhere ends it with one line and exit code 130, not a traceback."""
    try:
        return _main(argv)
    except CommandError as exc:  # commands report their own (reports_errors); this catches one raised outside them
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # commands that say what they finished catch it themselves
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function, _ = COMMANDS[command]
    module = importlib.import_module(module_name)
    return int(getattr(module, function)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
