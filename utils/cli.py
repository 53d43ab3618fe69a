"""Running a script's `main`: user errors become one line on stderr, not a traceback."""

import argparse
import sys
import traceback
from collections.abc import Callable

from utils.errors import UserError

DEBUG_FLAG = "--debug"


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """List `--debug` in a script's help; `run_cli` removes it from the arguments before parsing."""
    parser.add_argument(DEBUG_FLAG, action="store_true", help="print the traceback of an error too")


def run_cli(main: Callable[[list[str]], object], argv: list[str] | None = None) -> int:
    """Call `main(argv)` and return the process exit status.

    A `UserError` prints `error: <message>` and gives 1; an interrupt gives 128 + its signal number
    (130 for Ctrl-C). `--debug` anywhere in
    `argv` is removed and makes user errors print their traceback as well.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    try:
        main(argv)
    except UserError as error:
        if debug:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print(f"stopped: {interrupt}" if str(interrupt) else "interrupted", file=sys.stderr)
        return getattr(interrupt, "exit_code", 130)
    return 0
