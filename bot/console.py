"""``smart-resize``'s entry point, on the standard library alone: ``bot.cli`` loads the engine (numpy, OpenCV,
Pillow; half a second or more), and a Ctrl-C in that time ends as quietly as one later does, not with a traceback
out of whichever module was loading."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

STOPPED_WHILE_LOADING = "smart-resize: stopped before it began; nothing was written."


def smart_resize() -> int:
    with stopped_quietly_while_loading(STOPPED_WHILE_LOADING):
        from bot.cli import main
    return main()


@contextlib.contextmanager
def stopped_quietly_while_loading(line: str) -> Iterator[None]:
    """A Ctrl-C while the block imports modules says ``line`` and ends the process (exit 130, the shell's code for
    it) there and then. Not by raising KeyboardInterrupt: landing inside an extension module's initialisation
    (numpy's), that comes out as an ImportError, with a traceback. Nothing has been done yet, so nothing is lost."""

    def stop(signum: int, frame: object) -> None:
        os.write(2, f"{line}\n".encode())
        os._exit(130)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
