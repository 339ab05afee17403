"""onnxruntime, imported with its telemetry off, by whatever in the engine needs it first."""

from __future__ import annotations

import os
from typing import Any


def onnxruntime() -> Any:
    """The module, imported here rather than at the top of a module: a process that never detects (the app's own)
    skips its 20 MB. Its official wheels send usage events to Microsoft over HTTPS and keep a device id and an event
    store under ~/.cache/Microsoft unless told not to before it loads (its Privacy.md). Nothing of a job may leave the
    machine, and the engine runs offline: off, unless an operator has set the variable to something else."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    onnxruntime.disable_telemetry_events()  # and the events the variable does not cover, should it be unset
    return onnxruntime
