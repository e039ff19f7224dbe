"""nasd's NFS plugin: NASShares with ``protocol: nfs`` become lines of one exports file nasd owns."""
