"""Test helpers shared by the core's and the plugins' tests (real programs, never mocks)."""
