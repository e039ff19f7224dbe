"""Sizes written the Kubernetes way (``1Gi``, ``500Mi``) and turned into bytes.

ZFS reads ``1G`` as a gibibyte while Kubernetes reads it as 10^9 bytes. Rather than
guess which one a user meant, the decimal suffixes are refused with the fix.
"""

from __future__ import annotations

import re

BINARY_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_QUANTITY = re.compile(r"(?P<num>[0-9]{1,30}(?:\.[0-9]{1,30})?)(?P<unit>[A-Za-z]{0,8})")
#: the largest size nasd accepts: what ZFS can count (2^64 - 1 bytes, 16 EiB)
MAX_SIZE = (1 << 64) - 1
ALLOWED = "a whole number of bytes or a number with one of Ki, Mi, Gi, Ti, Pi, Ei (e.g. 512Mi, 1.5Ti)"


def parse_quantity(value: object) -> int:
    """Return the number of bytes ``value`` stands for, or raise ValueError saying what is allowed."""
    n = _parse(value)
    if n > MAX_SIZE:
        shown = repr(value) if isinstance(value, str) else "the size"  # no repr of a 5000-digit number
        raise ValueError(f"{shown} is larger than ZFS can count (at most 16Ei)")
    return n


def _parse(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}; use {ALLOWED}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size, got {value!r}; use {ALLOWED}")
    m = _QUANTITY.fullmatch(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a size; use {ALLOWED}")
    num, unit = m.group("num"), m.group("unit")
    if unit == "":
        if "." in num:
            raise ValueError(f"{value!r}: a size in bytes must be a whole number; use {ALLOWED}")
        return int(num)
    if unit not in BINARY_UNITS:
        hint = ""
        if unit[:1].upper() in "KMGTPE" and len(unit) <= 2:
            hint = f" (write {num}{unit[0].upper()}i for binary units, as ZFS means them)"
        raise ValueError(f"{value!r} has an unknown unit {unit!r}{hint}; use {ALLOWED}")
    whole = float(num) * BINARY_UNITS[unit]
    if whole != int(whole):
        raise ValueError(f"{value!r} is not a whole number of bytes")
    return int(whole)


def format_bytes(n: int) -> str:
    """The shortest exact binary form of ``n`` (``1073741824`` -> ``1Gi``)."""
    for unit in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        size = BINARY_UNITS[unit]
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)
