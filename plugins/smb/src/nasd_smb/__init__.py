"""nasd-smb: SMB shares served by Samba, and local users and groups.

Modules: ``settings`` (the plugin's configuration), ``render`` (smb.conf from models, pure),
``identity`` (unix users and groups, planned as useradd/groupadd commands), ``smbd`` (the
supervised daemon), ``conf`` (smb.conf as a file shared by the shares: testparm, reload), ``hookspecs``
(hooks other plugins implement to add share options and status), ``plugin`` (``SMBPlugin``, the hook
implementations).
"""

from .hookspecs import SmbShareStatus

__version__ = "0.1.0"
__all__ = ["SmbShareStatus"]
