"""``smart-resize``'s entry point, on the standard library alone: ``bot.cli`` loads the engine (numpy, OpenCV,
Pillow; half a second or more), and a Ctrl-C in that time ends as quietly as one later does, not with a
KeyboardInterrupt traceback out of whichever module was loading."""

from __future__ import annotations

import sys

STOPPED_WHILE_LOADING = "smart-resize: stopped before it began; nothing was written."


def smart_resize() -> int:
    try:
        from bot.cli import main
    except KeyboardInterrupt:
        print(STOPPED_WHILE_LOADING, file=sys.stderr)
        return 130  # the shell's code for a Ctrl-C
    return main()
