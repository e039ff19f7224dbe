"""Bounds on what nasd reads from users (manifest files, API bodies) and on what it says back.

A hostile or mistaken input must cost nasd at most a bounded amount of memory and time, and
the error it gets must be short: an echoed value is clipped, a long list of problems is cut.
"""

from __future__ import annotations

#: the largest manifest file or API body, in bytes (aiohttp's own default body limit, kept)
MAX_BYTES = 1024 * 1024
#: the deepest nesting of mappings and sequences in one document (a manifest needs about 6)
MAX_DEPTH = 64
#: the most YAML aliases (``*name``) in one file or body
MAX_ALIASES = 100
#: the most nodes that aliases may add, all together, in one file or body (what stops a
#: "billion laughs": a few aliases of aliases that would expand to millions of nodes)
MAX_ALIAS_NODES = 10_000
#: the longest echoed value or problem line in an error message, in characters
MAX_ECHO = 200
#: the most problems listed in one error
MAX_PROBLEMS = 50


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text``, or its start and how much was left out when it is longer than ``limit``."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def clip_problems(problems: list[str], line_limit: int = 2 * MAX_ECHO, count: int = MAX_PROBLEMS) -> list[str]:
    """At most ``count`` problems, each clipped, and a last line saying how many were left out."""
    out = [clip(p, line_limit) for p in problems[:count]]
    if len(problems) > count:
        out.append(f"… and {len(problems) - count} more problems")
    return out


def size_text(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"
