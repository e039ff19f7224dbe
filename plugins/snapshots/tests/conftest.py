"""The snapshots plugin's test helpers and its ``clock`` fixture live in snapshot_helpers."""

from snapshot_helpers import clock  # noqa: F401  (a fixture)
