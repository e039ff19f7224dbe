# The shared fixtures (real zfs-fuse, per-test pools, smbd, exportfs, the test Kubernetes API server) come
# from the distribution nasd-testing (testing/): pytest loads it as the plugin `nasd`, entry point pytest11.
import os

# The VM tier's tests need OpenZFS and a kernel nfsd: they run inside the VM (`make test-vm`, which sets
# NASD_VM=1), never on a host whose kernel lacks them.
collect_ignore = [] if os.environ.get("NASD_VM") else ["tests/vm"]
