# Shared fixtures (real zfs-fuse, per-test pools) for the core's and the plugins' tests.
pytest_plugins = ["nasd.testing.pytest_plugin"]

import os

# The VM tier's tests need OpenZFS and a kernel nfsd: they run inside the VM (`make test-vm`, which sets
# NASD_VM=1), never on a host whose kernel lacks them.
collect_ignore = [] if os.environ.get("NASD_VM") else ["tests/vm"]
