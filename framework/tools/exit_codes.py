"""`botrun`'s exit codes and the one line each means (`EXIT_CODES`, shown in `botrun --help`).

Shared by the argument parsing and error mapping (framework.tools.cli) and the subcommand
implementations (framework.tools.commands), which decide a run's code from its summary.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_KILLED = 3
EXIT_STRATEGY = 4
EXIT_UNREACHABLE = 5
EXIT_DAMAGED = 6
EXIT_INTERRUPTED = 130  # the shell's code for "stopped by SIGINT"

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done",
    EXIT_ERROR: "unexpected error (a bug: --debug shows the traceback)",
    EXIT_CONFIG: "usage, config or strategy-file error",
    EXIT_KILLED: "the kill switch engaged (the summary says why)",
    EXIT_STRATEGY: "the strategy failed: on_start raised, or a handler raised under --fail-fast",
    EXIT_UNREACHABLE: "a venue was unreachable at start (after retries)",
    EXIT_DAMAGED: "the recording is damaged (backtest/replay --strict)",
    EXIT_INTERRUPTED: "interrupted before the run could stop cleanly",
}
