"""nasd-smb: SMB shares served by Samba, and local users and groups.

Modules: ``settings`` (the plugin's configuration), ``render`` (smb.conf from models, pure),
``identity`` (unix users and groups, planned as useradd/groupadd commands), ``smbd`` (the
supervised daemon, config checks and reloads), ``hookspecs`` (hooks other plugins implement to
add share options), ``plugin`` (the hook implementations).
"""

__version__ = "0.1.0"
