"""The public face of the core: the one module a plugin imports.

Everything a plugin needs is here: the hook markers, the resource models, what a planning hook returns
(:class:`Plan`, :class:`Action`, :class:`Problem`, :class:`ConditionChange`), the errors that tell the core how
to treat a failure, the :class:`Context` every hook receives (``ctx.hooks`` calls hooks; ``ctx.runner`` runs
programs), the typed observations (:class:`Observed`), the file shared by many resources
(:class:`SharedFile`), snapshot listings, workloads, and small helpers (atomic writes, schedules, a timer on the
wall clock: :func:`wall_clock_timer`; a plugin's settings validated into its model: :func:`load_plugin_settings`).
Every other module of ``nasd`` is private to the core and may change without notice.

A plugin is a class whose instance keeps its state in attributes and its settings in a pydantic model;
its distribution names the class in the ``nasd`` entry-point group (``zfs = "nasd_zfs.plugin:ZFSPlugin"``),
and the core makes one instance per plugin manager. A plugin that implements a hook another plugin declares
marks it ``@hookimpl(optionalhook=True)``, so it loads without that plugin; a plugin that cannot work without
another names it in its distribution's dependencies.
"""

from __future__ import annotations

from .aio import wait_event, wall_clock_timer
from .context import Context
from .errors import CommandError, NasdError, OwnerError, PermanentError, TemporaryError
from .feed import DesiredFeed
from .hookspecs import hookimpl, hookspec
from .models import (KINDS, Condition, ManifestError, NASDirectory, NASGroup, NASShare, NASUser, Resource, Status,
                     ZDataset, ZPool, ZSnapshotRestore, ZSnapshotSchedule, format_validation_error, parse_resource)
from .models.base import API_GROUP, API_VERSION, DNS_NAME, GROUP_VERSION
from .models.identity import SecretRef
from .models.shares import TimeMachineStatus, covers_everyone
from .models.zfs_properties import CHECKS, CREATE_ONLY, SIZE_PROPERTIES, normalize, validate_properties
from .observation import Observed
from .planning import Action, ConditionChange, Plan, Problem
from .plugin_hooks import PluginHooks
from .plugin_settings import load_plugin_settings
from .runner import Runner
from .shared_file import FileFormat, SharedFile, Verdict
from .snapshot_listing import SnapshotInfo, SnapshotListing
from .state import atomic_write, write_json
from .models.timing import is_due, next_tick, parse_interval
from .workloads import IMAGE, HostPath, Port, SecretFile, Workload, WorkloadPlan

__all__ = [
    # hooks
    "hookimpl", "hookspec", "Context", "PluginHooks", "Runner",
    # models
    "KINDS", "Resource", "Status", "Condition", "ZPool", "ZDataset", "NASShare", "NASDirectory", "NASUser",
    "NASGroup", "ZSnapshotSchedule", "ZSnapshotRestore", "SecretRef", "TimeMachineStatus", "covers_everyone",
    "ManifestError", "parse_resource", "format_validation_error", "API_GROUP", "API_VERSION", "GROUP_VERSION",
    "DNS_NAME", "CHECKS", "CREATE_ONLY", "SIZE_PROPERTIES", "normalize", "validate_properties",
    # planning
    "Plan", "Action", "Problem", "ConditionChange", "Observed",
    # a file shared by many resources
    "SharedFile", "FileFormat", "Verdict",
    # errors
    "NasdError", "PermanentError", "TemporaryError", "CommandError", "OwnerError",
    # sources, snapshots, workloads
    "DesiredFeed", "SnapshotInfo", "SnapshotListing", "Workload", "WorkloadPlan", "HostPath", "SecretFile",
    "Port", "IMAGE",
    # helpers
    "atomic_write", "write_json", "wait_event", "wall_clock_timer", "is_due", "next_tick", "parse_interval",
    "load_plugin_settings",
]
