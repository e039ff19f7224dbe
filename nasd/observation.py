"""What the plugins observed in one pass, kept per plugin by the core and handed back typed.

Each plugin's ``observe`` returns one object of its own type (or None: nothing of its kind here). The core
keeps it under the plugin's name; a plugin that raised while observing has its error kept instead. A
planning hook asks for its own with :meth:`Observed.of`, which gives the object back typed, or raises the
error recorded for that plugin (the resource then shows it as its Ready condition), so no hook looks up
string keys or error conventions.
"""

from __future__ import annotations

from typing import Any, TypeVar

from .errors import PermanentError, TemporaryError

T = TypeVar("T")


class Observed:
    """The pass's observations: ``parts[plugin]`` what a plugin saw, ``errors[plugin]`` why it saw nothing."""

    def __init__(self, parts: dict[str, Any] | None = None, errors: dict[str, BaseException] | None = None):
        self.parts: dict[str, Any] = dict(parts or {})
        self.errors: dict[str, BaseException] = dict(errors or {})

    @classmethod
    def failed(cls, error: BaseException) -> "Observed":
        """Observation as a whole failed (the core's own fault): every plugin's ``of`` raises it."""
        observed = cls()
        observed.errors["*"] = error
        return observed

    def of(self, plugin: str, kind: type[T]) -> T | None:
        """What ``plugin`` observed, as a ``kind``; None when it observed nothing (nothing of its kind is
        desired or present). Raises the error the plugin met while observing: a ``TemporaryError`` or
        ``PermanentError`` as raised (its reason kept), anything else as ``TemporaryError`` (``ObserveFailed``)."""
        error = self.errors.get(plugin) or self.errors.get("*")
        if error is not None:
            if isinstance(error, (TemporaryError, PermanentError)):
                raise error
            raise TemporaryError(f"{plugin} could not observe the system: {type(error).__name__}: {error}",
                                 reason="ObserveFailed", delay=2.0) from error
        part = self.parts.get(plugin)
        if part is not None and not isinstance(part, kind):
            raise TypeError(f"plugin {plugin} observed a {type(part).__name__}, not a {kind.__name__}")
        return part

    def error_of(self, plugin: str) -> BaseException | None:
        """The error ``plugin`` met while observing (None when it observed)."""
        return self.errors.get(plugin) or self.errors.get("*")

    def observed(self, plugin: str) -> bool:
        """Whether ``plugin`` returned an observation (not None, no error)."""
        return self.parts.get(plugin) is not None and self.error_of(plugin) is None


__all__ = ["Observed"]
