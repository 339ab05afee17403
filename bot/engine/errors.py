"""One error class per way an input can be refused; each carries one plain sentence a person can act on."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: ``str(error)`` is a one-line explanation with what to do instead, in words that fit every
    surface (Slack, the API, the CLI). ``setting`` names the deployment setting behind a limit, where one is."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross the worker-process pool pickled; the default would rebuild them without ``setting``.
        return (type(self), (str(self),), {"setting": self.setting})


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
