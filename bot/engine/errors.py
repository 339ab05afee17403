"""One error class per way an input can be refused; each carries one plain sentence a person can act on."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: ``str(error)`` is a one-line explanation with what to do instead."""


class NotAnImage(EngineError):
    pass


class UnsupportedFormat(EngineError):
    pass


class CorruptImage(EngineError):
    pass


class ImageTooLarge(EngineError):
    pass


class InvalidSize(EngineError):
    pass


class TooManyOutputs(EngineError):
    pass


class InvalidOption(EngineError):
    pass
