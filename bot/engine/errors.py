"""One error class per way an input can be refused; each carries one plain sentence a person can act on."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: ``str(error)`` is a one-line explanation with what to do instead."""

    code = "engine_error"


class NotAnImage(EngineError):
    code = "not_an_image"


class UnsupportedFormat(EngineError):
    code = "unsupported_format"


class CorruptImage(EngineError):
    code = "corrupt_image"


class ImageTooLarge(EngineError):
    code = "image_too_large"


class InvalidSize(EngineError):
    code = "invalid_size"


class TooManyOutputs(EngineError):
    code = "too_many_outputs"


class InvalidOption(EngineError):
    code = "invalid_option"
