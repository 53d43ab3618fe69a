"""Stopping a training run cleanly on Ctrl-C (SIGINT) or SIGTERM (e.g. from a job scheduler)."""

import signal
import sys
import threading


class StopRequested(KeyboardInterrupt):
    """Training stopped on a signal after saving its checkpoint; `exit_code` is 128 + the signal."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number


class StopSignals:
    """While active, the first SIGINT or SIGTERM only sets `received` (the signal number), so the
    training loop can finish its step and save a checkpoint; a second one interrupts at once.

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: int | None = None
        self._previous: dict = {}

    def _handle(self, signal_number: int, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal_number
        name = signal.Signals(signal_number).name
        print(
            f"\n{name}: saving a checkpoint after this step, then stopping (again: stop at once)",
            file=sys.stderr,
        )

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
