"""Errors a plugin raises to tell the core how to treat a failure (the kopf way)."""

from __future__ import annotations


class NasdError(Exception):
    """Base of every nasd error."""


class PermanentError(NasdError):
    """Retrying will not help until the manifest or the system changes: reported, not retried soon."""

    def __init__(self, message: str, reason: str = "Failed"):
        super().__init__(message)
        self.reason = reason


class TemporaryError(NasdError):
    """Worth retrying after ``delay`` seconds (with backoff), e.g. a busy dataset."""

    def __init__(self, message: str, reason: str = "Retrying", delay: float = 1.0):
        super().__init__(message)
        self.reason = reason
        self.delay = delay


class CommandError(NasdError):
    """A program exited non-zero; ``stderr`` is kept for the Condition message."""

    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str, transient: bool = False):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.transient = transient
        first = (stderr.strip() or stdout.strip() or f"exit status {returncode}").splitlines()[0]
        super().__init__(f"{argv[0].rsplit('/', 1)[-1]} {' '.join(argv[1:3])}: {first}")


class OwnerError(NasdError):
    """No plugin, or more than one, answered a hook that needs exactly one owner.

    ``reason``: ``NoPlugin`` or ``PluginConflict``."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason
