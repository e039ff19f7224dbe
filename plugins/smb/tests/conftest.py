"""The SMB fixtures live in nasd.testing.smb (the snapshots and Time Machine tests use them too)."""

from nasd.testing.smb import SmbEnv, free_port, smb_env  # noqa: F401
