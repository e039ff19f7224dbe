"""The SMB fixtures live in nasd_testing.smb (the snapshots and Time Machine tests use them too)."""

from nasd_testing.smb import SmbEnv, free_port, smb_env  # noqa: F401
