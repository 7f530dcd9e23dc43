"""Stop long work cleanly when the run is cancelled.

Cancelling a run (Dagster UI, Ctrl-C) delivers SIGINT/SIGTERM to the process. Inside
`GracefulStop` the signal only sets a flag; the trainer polls it after each optimizer step and
returns, the search records the trial as interrupted (it is retried on the next materialization),
and on leaving the block the original handler is invoked, so the framework still sees the
cancellation (Dagster marks the run canceled; plain Python raises KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

# what signal.getsignal returns and signal.signal accepts (typeshed's private `_HANDLER`)
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, _Handler] = {}

    def __call__(self) -> bool:
        """True once a stop signal arrived (pass the instance as the trainer's `should_stop`)."""
        return self.received is not None

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self.received is None:
            return
        previous = self._previous.get(self.received)
        if callable(previous):
            previous(self.received, None)
        elif previous == signal.SIG_DFL or previous is None:
            raise KeyboardInterrupt(f"stopped by signal {signal.Signals(self.received).name}")
