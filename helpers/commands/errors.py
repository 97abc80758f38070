"""How a command fails: raise ``CommandError(message, exit_code)``; ``reports_errors`` prints it and exits with the code.

Exit codes, the same in every command: 2 when what the user typed cannot be used
(a bad option or value, a folder that does not exist), 1 when the work itself
failed (a download, a write, a server that cannot listen), 130 on Ctrl-C.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence

USAGE = 2  # the command line cannot be used as given
FAILED = 1  # the work failed: network, disk, a damaged file


class CommandError(Exception):
    """A failure a command reports as one ``error: ...`` line on stderr and an exit code."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def reports_errors(main: Callable[[Sequence[str]], int]) -> Callable[[Sequence[str]], int]:
    """Wrap a command's ``main(argv)``: a CommandError becomes its message on stderr and its exit code."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str]) -> int:
        try:
            return main(argv)
        except CommandError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        except BrokenPipeError:  # the reader went away: __main__ ends quietly
            raise
        except OSError as exc:  # the disk or the system said no (a permission, a name too long, a loop of links)
            print(f"error: {exc}", file=sys.stderr)
            return FAILED

    return wrapper
