"""nasd plugin: macOS Time Machine shares over SMB (Samba's vfs_fruit), bounded by a quota."""
