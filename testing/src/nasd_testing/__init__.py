"""Test helpers shared by the core's and the plugins' tests (real programs, never mocks): the distribution
``nasd-testing``, loaded by pytest as the plugin ``nasd`` (entry point group ``pytest11``, see
:mod:`nasd_testing.pytest_plugin`). The ``nasd`` distribution holds no test code."""

import pytest

# The helpers' asserts explain themselves as a test's do: pytest rewrites the modules of a pytest11
# distribution installed from a wheel, but not those of an editable install (its files are not in the record).
pytest.register_assert_rewrite("nasd_testing")
