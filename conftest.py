# Shared fixtures (real zfs-fuse, per-test pools) for the core's and the plugins' tests.
pytest_plugins = ["nasd.testing.pytest_plugin"]
