"""Password files: a secret in a root-only file, read without blocking nasd or following a link.

A manifest names the file, so it may be anything: a FIFO (whose open waits for a writer forever), a
device (``/dev/zero`` never ends), a socket, a directory, a symlink to a file the manifest's author
could not name, or hundreds of megabytes. :func:`read_secret_file` looks at the name itself (never
through a link), refuses anything but a regular file before opening it, opens it with ``O_NOFOLLOW``
and ``O_NONBLOCK``, checks again what it opened (``fstat``: a regular file, private to the user nasd
runs as, at most :data:`MAX_BYTES`) and reads at most :data:`MAX_BYTES` + 1 bytes. A regular file
that size is read at once, so the read may run on the event loop.

Every refusal is a :class:`SecretFileError` whose ``reason`` becomes the NASUser's Ready reason and
whose message names the file and the fix; it never quotes the file's content.
"""

from __future__ import annotations

import errno
import os
import stat

MAX_BYTES = 4096  # a password is one line

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

_KINDS = (
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


class SecretFileError(OSError):
    """A password file nasd refuses; ``reason`` is the Condition reason (e.g. ``SecretNotRegularFile``)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


class SecretNotPrivate(SecretFileError, PermissionError):
    """A password file others may read or own."""


def _rules() -> str:
    return f"a password file must be a regular file of one line (mode 0600, owned by uid {os.geteuid()})"


def _kind(mode: int) -> str | None:
    return next((name for test, name in _KINDS if test(mode)), None if stat.S_ISREG(mode) else "not a regular file")


def _check_kind(path: str, st: os.stat_result) -> None:
    kind = _kind(st.st_mode)
    if kind == "a symlink":
        raise SecretFileError("SecretIsSymlink", f"{path} is a symlink: nasd does not follow links to a password "
                                                 f"file; point passwordSecretRef.file at the file itself "
                                                 f"({_rules()})")
    if kind is not None:
        raise SecretFileError("SecretNotRegularFile", f"{path} is {kind}: {_rules()}")


def _check_private(path: str, st: os.stat_result) -> None:
    if st.st_uid != os.geteuid():
        raise SecretNotPrivate("SecretNotPrivate", f"{path} belongs to uid {st.st_uid}; it must belong to the user "
                                                   f"nasd runs as (uid {os.geteuid()}): chown it")
    if st.st_mode & 0o077:
        raise SecretNotPrivate("SecretNotPrivate", f"{path} is readable by others (mode {oct(st.st_mode & 0o777)}); "
                                                   f"chmod 600 it")


def _too_large(path: str, size: str, max_bytes: int) -> SecretFileError:
    return SecretFileError("SecretTooLarge", f"{path} holds {size} bytes, more than the {max_bytes} a password "
                                             f"file may hold: {_rules()}")


def _unreadable(path: str, e: OSError) -> SecretFileError:
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return SecretFileError("SecretNotFound", f"{path} does not exist: write the password to it ({_rules()})")
    if e.errno == errno.ELOOP:  # O_NOFOLLOW: the name became a symlink after it was looked at
        return SecretFileError("SecretIsSymlink", f"{path} is a symlink: nasd does not follow links to a password "
                                                  f"file; point passwordSecretRef.file at the file itself")
    return SecretFileError("PasswordUnreadable", f"{path} cannot be read ({e.strerror or e}): {_rules()}")


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def check_password(where: str, password: str, max_bytes: int = MAX_BYTES) -> str:
    """``password`` without its one trailing newline, if it is one non-empty line without CR or NUL;
    ``where`` names its source in the error."""
    if len(password.encode("utf-8", "replace")) > max_bytes:
        raise SecretFileError("SecretTooLarge", f"{where} holds more than the {max_bytes} bytes a password may have")
    line = password.removesuffix("\n")
    if not line or any(c in line for c in "\n\r\0"):
        raise SecretFileError("SecretMalformed", f"{where} must hold one line: the password (no CR or NUL, "
                                                 f"at most one newline at its end)")
    return line


def read_secret_file(path: str, max_bytes: int = MAX_BYTES) -> str:
    """The password in the file ``path`` (its one line, without the newline), or SecretFileError."""
    try:
        st = os.lstat(path)
    except OSError as e:
        raise _unreadable(path, e) from None
    _check_kind(path, st)  # a FIFO, device or socket is never opened
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        raise _unreadable(path, e) from None
    try:
        st = os.fstat(fd)  # what was opened, should the name have been swapped since
        _check_kind(path, st)
        _check_private(path, st)
        if st.st_size > max_bytes:
            raise _too_large(path, str(st.st_size), max_bytes)
        try:
            data = _read_at_most(fd, max_bytes + 1)
        except OSError as e:
            raise _unreadable(path, e) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew after fstat
        raise _too_large(path, f"over {max_bytes}", max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretFileError("SecretMalformed", f"{path} is not UTF-8 text: write the password as one line "
                                                 f"of UTF-8") from None
    return check_password(path, text, max_bytes)
