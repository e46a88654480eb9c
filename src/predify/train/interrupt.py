"""Ctrl-C during training: the first one stops at the end of the step, a second one at once.

A KeyboardInterrupt in the middle of ``optimizer.step()`` could leave some weights updated and
others not, and a checkpoint of that state would not resume exactly; deferring it to the end of
the step keeps the checkpoint consistent.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from types import FrameType

__all__ = ["Interrupt", "deferred_interrupt", "interrupt_handling"]


@dataclass
class Interrupt:
    """Set by the first Ctrl-C, so the loop stops at the next consistent point."""

    requested: bool = False


@contextmanager
def deferred_interrupt() -> Iterator[Interrupt]:
    """Turn the first SIGINT into a flag; a second one raises KeyboardInterrupt at once.

    Outside the main thread (where signal handlers cannot be installed) the flag is never set.
    """
    flag = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag.requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        flag.requested = True
        print(
            "\ninterrupt: finishing this step and writing a checkpoint "
            "(press Ctrl-C again to stop at once)",
            file=sys.stderr,
        )

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def interrupt_handling(enabled: bool) -> AbstractContextManager[Interrupt]:
    """[`deferred_interrupt()`][predify.train.interrupt.deferred_interrupt] when ``enabled``;
    otherwise a flag that is never set (a library installs no signal handler unasked)."""
    return deferred_interrupt() if enabled else nullcontext(Interrupt())
