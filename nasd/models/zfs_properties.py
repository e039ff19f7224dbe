"""The allowlist of ZFS dataset properties a manifest may set, and how each value is checked.

Values are normalised to the text ``zfs set``/``zfs get -p`` use (``on``/``off``, sizes
in bytes), so a planner can compare desired and observed values as plain strings.
"""

from __future__ import annotations

import re
from typing import Callable

from .quantity import parse_quantity

ON_OFF = ("on", "off")
COMPRESSION = (
    ("on", "off", "lzjb", "gzip", "zle", "lz4", "zstd", "zstd-fast")
    + tuple(f"gzip-{i}" for i in range(1, 10))
    + tuple(f"zstd-{i}" for i in range(1, 20))
)

#: properties that can only be given when the dataset is created
CREATE_ONLY = frozenset({"casesensitivity", "normalization", "utf8only"})

#: user properties under this prefix belong to nasd itself
RESERVED_USER_PREFIX = "nasd.io:"
USER_PROPERTY = re.compile(r"[a-z0-9][a-z0-9._-]*:[a-z0-9._:-]+")


def _choice(*allowed: str, shown: str = "") -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not allowed; use one of: {shown or ', '.join(allowed)}")
        return value

    return check


def _size_or_none(value: str) -> str:
    if value in ("none", "0"):
        return "none"
    return str(parse_quantity(value))


def _recordsize(value: str) -> str:
    n = parse_quantity(value)
    if n < 512 or n > 16 << 20 or n & (n - 1):
        raise ValueError(f"{value!r}: recordsize must be a power of two from 512 to 16Mi (e.g. 128Ki, 1Mi)")
    return str(n)


CHECKS: dict[str, Callable[[str], str]] = {
    "compression": _choice(
        *COMPRESSION, shown="on, off, lzjb, gzip, gzip-1..gzip-9, zle, lz4, zstd, zstd-1..zstd-19, zstd-fast"
    ),
    "recordsize": _recordsize,
    "atime": _choice(*ON_OFF),
    "quota": _size_or_none,
    "refquota": _size_or_none,
    "reservation": _size_or_none,
    "refreservation": _size_or_none,
    "xattr": _choice("on", "off", "sa", "dir"),
    "acltype": _choice("off", "noacl", "nfsv4", "posix", "posixacl"),
    "snapdir": _choice("hidden", "visible"),
    "readonly": _choice(*ON_OFF),
    "sync": _choice("standard", "always", "disabled"),
    "exec": _choice(*ON_OFF),
    "setuid": _choice(*ON_OFF),
    "copies": _choice("1", "2", "3"),
    "canmount": _choice("on", "off", "noauto"),
    "casesensitivity": _choice("sensitive", "insensitive", "mixed"),
    "normalization": _choice("none", "formC", "formD", "formKC", "formKD"),
    "utf8only": _choice(*ON_OFF),
}

#: properties whose normalised value is a number of bytes (and "none")
SIZE_PROPERTIES = frozenset({"recordsize", "quota", "refquota", "reservation", "refreservation"})


def _as_text(value: object) -> str:
    # YAML 1.1 reads an unquoted `off` as False: accept it as the user meant it.
    if value is True:
        return "on"
    if value is False:
        return "off"
    if isinstance(value, int) and abs(value) > 1 << 64:
        raise ValueError("a number larger than 2^64 is no ZFS property value")
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, number or boolean, got {type(value).__name__}")


def normalize(name: str, value: str) -> str:
    """The form ``zfs get -p`` prints for a valid property value (sizes in bytes)."""
    check = CHECKS.get(name)
    return check(value) if check else value


def validate_properties(props: dict[str, object]) -> dict[str, str]:
    """Check every property against the allowlist; return them as text, as written.

    Booleans become on/off; sizes stay as the user wrote them (see ``normalize``).
    Errors name the property and say what is allowed.
    """
    out: dict[str, str] = {}
    problems: list[str] = []
    for name, raw in props.items():
        try:
            value = _as_text(raw)
            if any(c in value for c in "\n\r\0") or len(value) > 8192:
                raise ValueError("a value may not contain newlines and is at most 8192 characters")
            if name in CHECKS:
                CHECKS[name](value)
                out[name] = value
            elif ":" in name:
                if len(name) > 256 or not USER_PROPERTY.fullmatch(name):
                    raise ValueError(
                        "a user property is 'namespace:name' in lower-case letters, digits, '.', '_', '-', at most 256 "
                        "characters"
                    )
                if name.startswith(RESERVED_USER_PREFIX):
                    raise ValueError(f"user properties under {RESERVED_USER_PREFIX!r} are reserved for nasd")
                out[name] = value
            else:
                raise ValueError(
                    "not an allowed property; use one of: "
                    + ", ".join(sorted(CHECKS))
                    + ", or a user property 'namespace:name'"
                )
        except ValueError as e:
            problems.append(f"{name}: {e}")
    if problems:
        raise ValueError("; ".join(problems))
    return out
