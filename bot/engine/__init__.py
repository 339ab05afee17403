"""The embedded content-aware resize engine: pure, synchronous image code (bytes in, images + geometry out).

Public surface: ``resize``, ``validate``, ``parse_size``, ``parse_focus`` and the request/result/error types.
``EnginePool`` (in ``bot.engine.pool``) runs ``resize`` in worker processes for asyncio callers.
"""

from .core import MAX_VARIANTS, WEB_TYPES, resize, validate, web_copy
from .decode import image_content_type, image_size, readable_extensions
from .errors import (
    CorruptImage,
    EngineError,
    ImageTooLarge,
    InvalidOption,
    InvalidSize,
    NotAnImage,
    TooManyOutputs,
    UnsupportedFormat,
)
from .prompts import parse_focus
from .sizes import (
    Fitted,
    check_input_bytes,
    check_output_count,
    check_output_pixels,
    fit_outputs,
    output_pixels,
    parse_size,
)
from .types import Limits, Output, ResizeRequest, ResizeResult, Size

__all__ = [
    "MAX_VARIANTS",
    "WEB_TYPES",
    "CorruptImage",
    "EngineError",
    "Fitted",
    "ImageTooLarge",
    "InvalidOption",
    "InvalidSize",
    "Limits",
    "NotAnImage",
    "Output",
    "ResizeRequest",
    "ResizeResult",
    "Size",
    "TooManyOutputs",
    "UnsupportedFormat",
    "check_input_bytes",
    "check_output_count",
    "check_output_pixels",
    "fit_outputs",
    "image_content_type",
    "image_size",
    "output_pixels",
    "parse_focus",
    "parse_size",
    "readable_extensions",
    "resize",
    "validate",
    "web_copy",
]
