"""An example nasd plugin: SMB shares that hide the files desktops leave behind (see ``plugin``)."""
