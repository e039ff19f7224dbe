"""nasd: a NAS daemon that turns declarative resources into ZFS storage and file shares.

The core (this package) owns the resource models, the hook specifications, the
reconcile loop, conditions, the REST API and the CLI. Everything that touches a
real program lives in a plugin found through the ``nasd`` entry-point group.
"""

__version__ = "0.1.0"
