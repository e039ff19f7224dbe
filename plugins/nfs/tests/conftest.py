"""The NFS fixtures live in nasd.testing.nfs (the VM tier's tests use them too)."""
