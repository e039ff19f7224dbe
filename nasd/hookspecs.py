"""The contract between the nasd core and its plugins.

Every hook is called with keyword arguments only, by the core, through
``nasd.calling``. An implementation may be ``async def``: the core awaits it.
Hooks are grouped by the phase of a daemon's life in which they run:

1. setup: ``addhooks``, ``startup``, ``supply_desired_state``
2. each reconcile pass: ``observe``, then one ``plan_*`` per resource in
   dependency order (pools, datasets, directories/groups/users, shares,
   schedules, restores), then ``plan_absent`` for deleted resources
3. on demand: ``list_snapshots``, ``take_snapshot``, ``destroy_snapshots``, ``hold_snapshots``,
   ``release_snapshots``, ``clone`` (the ZFS plugin answers them for the snapshots plugin);
   ``read_secret`` and ``plan_workload`` (the Kubernetes plugin answers them: Secret references,
   and programs run in pods, e.g. an SMB share's smbd)
4. reporting: ``status_changed``, ``resource_deleted``
5. teardown: ``shutdown``

Planning hooks (``plan_*``) are *pure*: they look at the resource and at what
``observe`` found, and return a :class:`nasd.planning.Plan`. They never run a
command themselves; the core runs the plan's actions (or, for ``nasd plan``,
prints them). A plan with no actions means "already converged".

Ownership: for each resource exactly one plugin must return a plan. The others
return ``None`` ("not mine"). No owner gives ``Ready=False, reason: NoPlugin``;
two owners give ``reason: PluginConflict``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import pluggy

if TYPE_CHECKING:
    from .context import Context
    from .feed import DesiredFeed
    from .models import NASShare, Resource, ZDataset, ZPool
    from .models.identity import SecretRef
    from .observation import Observed
    from .planning import Plan
    from .snapshot_listing import SnapshotListing
    from .workloads import Workload, WorkloadPlan

hookspec = pluggy.HookspecMarker("nasd")
hookimpl = pluggy.HookimplMarker("nasd")


# -- 1. setup ---------------------------------------------------------------


@hookspec(historic=True)
def addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Let a plugin declare hook specs of its own, for other plugins to implement.

    Called when the plugin is registered (historic: plugins registered later see it
    too). The SMB plugin uses it to offer "add options to a share" to the
    snapshots and Time Machine plugins without them importing it.

    Return value: ignored. Must never: register or block other plugins.
    """


@hookspec
def startup(ctx: Context) -> None:
    """Prepare the plugin before the first reconcile pass.

    Called once per daemon or one-shot command, after every plugin is registered.
    Typical work: find the programs the plugin drives and detect what they support
    (the ZFS plugin detects the zfs dialect here), using ``ctx.runner`` for
    read-only commands only.

    Return value: ignored (``None``). Raising stops the daemon with the error, so
    only raise when the plugin cannot work at all; a missing optional program
    should instead be reported later on the resources that need it.
    Must never: change the system (create, set, destroy, write config files).
    """


@hookspec
def supply_desired_state(ctx: Context, feed: DesiredFeed) -> None:
    """Feed desired state (resources) to the core.

    Called once at start, after ``startup``. A source plugin loads what it has now
    and calls ``feed.replace(source_name, resources, errors)`` before returning, so
    a one-shot ``nasd reconcile`` sees it. When ``ctx.watch`` is true (``nasd
    serve``) it may keep watching with ``ctx.spawn(coro, name)`` and call
    ``feed.replace``/``feed.put``/``feed.remove`` on every change; the feed wakes
    the reconciler. The manifest folder, the REST API store and the Kubernetes
    watcher are all such plugins.

    Return value: ignored. ``None`` from a plugin that is no source is the norm.
    Must never: drop resources because a file failed to parse (keep the last good
    version and report the error instead: a vanished resource can mean a deletion).
    """


# -- 2. reconcile pass ----------------------------------------------------------


@hookspec
def observe(ctx: Context, desired: list[Resource]) -> Any:
    """Read the current state of the system that this plugin manages.

    Called at the start of every reconcile pass with every desired resource, for
    every plugin at once (concurrently). Read as little as possible: the ZFS plugin
    reads all pools and datasets in two commands whatever their number.

    Return value: one object of the plugin's own type (a dataclass, typically) with
    what it needs when planning, or ``None`` when nothing of its kind is desired or
    present. The core keeps it under the plugin's name in the pass's
    :class:`nasd.plugin.Observed`, given as ``observed`` to the ``plan_*`` hooks,
    where ``observed.of(name, Type)`` hands it back typed. Raise when the system
    cannot be read (a ``TemporaryError`` with a reason that names the fault, e.g.
    ``ZFSNotRunning``): the error is kept and raised again to this plugin's planning
    hooks, so its resources show it; the other plugins observe and plan as usual.
    Must never: change the system; read another plugin's observation.
    """


@hookspec
def dataset_properties(ctx: Context, datasets: list[ZDataset], desired: list[Resource]) -> Mapping[str, Mapping[str, str]] | None:
    """Properties other resources need on datasets, beyond what each ZDataset's spec says.

    Called once per pass by the plugin that manages datasets (the ZFS plugin, while it observes), with
    every desired ZDataset and every desired resource. The Time Machine plugin uses it to put a
    ``refquota`` on a dataset whose share has a ``maxSize``.

    Return value: ``{ZDataset name: {property: value}}``; values are validated like a spec's (the
    property allowlist, sizes) and a property the ZDataset's own spec sets wins. ``None`` adds nothing.
    Must never: run a command; ask for a create-only property.
    """


@hookspec
def plan_pool(ctx: Context, pool: ZPool, observed: Observed) -> Plan | None:
    """Plan how to make the ZFS pool ``pool`` exist as its spec says.

    Called once per ZPool per pass (not while it backs off after a failure), before any dataset. A pool that exists with a
    different layout is reported (``plan.problem``), never recreated.

    Return value: a :class:`~nasd.planning.Plan` (empty when converged) with the
    pool's status fields; ``None`` means "not mine". Must never: run a command,
    destroy or recreate a pool, force (``-f``) anything.
    """


@hookspec
def plan_dataset(
    ctx: Context, dataset: ZDataset, pool: ZPool | None, observed: Observed
) -> Plan | None:
    """Plan how to make the ZFS dataset ``dataset`` exist with its spec's properties.

    Called once per ZDataset per pass (not while it backs off), once its pool is available (Ready, or
    ``Available=True`` while it resilvers; the core reports ``PoolNotReady`` otherwise), parents before children. ``pool`` is the pool's
    resource. Properties that differ are set back (drift is logged through
    ``plan.events``); a change to a create-only property is refused with
    ``plan.problem``; a dataset nasd does not manage is never touched.

    Return value: a Plan with the dataset's status (mountpoint, used, ...);
    ``None`` means "not mine". Must never: run a command; touch an unmanaged
    dataset; destroy anything.
    """


@hookspec
def plan_share(
    ctx: Context, share: NASShare, dataset: ZDataset, observed: Observed
) -> Plan | None:
    """Plan how to serve ``share`` over its protocol.

    Called once per NASShare per pass (not while it backs off), once its dataset
    is available (Ready, or ``Available=True``); ``dataset`` carries the dataset's status (its mountpoint is the
    share's path). Protocol plugins answer only for their ``spec.protocol``. Every
    share of a pass is planned before any share's plan runs, so a plugin that keeps
    one file for all its shares can write it once, in the first action that runs.

    Return value: a Plan with the share's status (path, UNC or export line);
    ``None`` means "not my protocol". Must never: run a command; write outside the
    plugin's own config files; change the dataset.
    """


@hookspec
def plan_resource(
    ctx: Context, resource: Resource, dependencies: Mapping[tuple[str, str], Resource], observed: Observed
) -> Plan | None:
    """Plan any kind that has no dedicated hook (directories, users, groups, schedules, restores).

    Called once per such resource per pass (not while it backs off), once its
    dependencies are available (Ready, or ``Available=True``); ``dependencies`` maps (kind, name) to those resources
    with their status. Resources of one kind are all planned before any of their
    plans runs.

    Return value: a Plan; ``None`` means "not mine". Must never: run a command.
    """


@hookspec
def plan_absent(ctx: Context, resource: Resource, observed: Observed) -> Plan | None:
    """Plan what deleting ``resource`` from the desired state means on the system.

    Called in each pass for every resource that was reconciled before and is no
    longer desired, in reverse dependency order (shares before datasets before
    pools); also, before planning, for the old version of a resource whose change
    cannot be converged in place (``Resource.replaced_by``, e.g. a share whose
    protocol changed: the new version is desired at the same time). Not called
    while a desired-state source reports errors (an unreadable manifest must not
    read as a deletion), and in ``nasd reconcile -f`` only with ``--prune``. The default is to keep the data: only ``deletionPolicy: Destroy``
    destroys, and a destroy that would take children or snapshots along is
    refused (``plan.problem``) unless the spec asks for it.

    Return value: a Plan whose actions complete the deletion (empty when there is
    nothing to do; the core then forgets the resource), or with a ``problem`` to
    keep it pending; ``None`` means "not mine". Must never: run a command; destroy
    data the spec did not ask to destroy, or data that a desired resource still
    declares (e.g. under a new resource name).
    """


# -- 3. on demand ---------------------------------------------------------------


@hookspec
def take_snapshot(
    ctx: Context, datasets: list[str], name: str, recursive: bool, properties: Mapping[str, str]
) -> list[str] | None:
    """Take the snapshot ``name`` of every dataset in ``datasets`` (ZFS names) now, together.

    Called by the snapshot scheduler and by tools, outside the plan/apply flow.
    Uses as few commands as the ZFS dialect allows (one for several datasets on
    OpenZFS, ``-r`` for a subtree). ``properties`` are user properties set on the
    snapshots as they are made.

    Return value: the full names of the snapshots made; ``None`` means "not mine".
    Must never: destroy or rename anything.
    """


@hookspec
def list_snapshots(ctx: Context, roots: list[str], properties: list[str]) -> SnapshotListing | None:
    """List every snapshot of the datasets ``roots`` (ZFS names) and of every dataset below them.

    Called by the snapshots plugin while it observes (so: read-only), at most once per pass for all
    its schedules and restores together. ``properties`` are user properties (``module:name``) to
    read for each snapshot. The listing also says which clones exist in the roots' pools and which
    snapshot each comes from, and how many holds each snapshot has.

    Return value: a :class:`~nasd.snapshot_listing.SnapshotListing` made with as few commands as the
    ZFS dialect allows (one listing for all roots, never one per dataset or per snapshot); roots that
    do not exist are left out. ``None`` means "not mine". Must never: change anything.
    """


@hookspec
def destroy_snapshots(ctx: Context, snapshots: list[str], listing: SnapshotListing) -> int | None:
    """Destroy the snapshots ``snapshots`` (full names ``pool/ds@name``), in as few commands as possible.

    Called by retention when it prunes. ``listing`` is the observation the decision was made on: the
    implementation may use it to batch (``zfs destroy ds@a,b,c`` where the dialect allows it, in
    batches of a few hundred names; ``zfs destroy -r root@name`` where that removes exactly the
    wanted snapshots of a subtree the listing covers), never to destroy anything not in
    ``snapshots``.

    Return value: the number of commands run; ``None`` means "not mine". Raises the command's error
    (the caller reports it) when a snapshot cannot be destroyed. Must never: destroy a held snapshot
    or one with clones (it fails instead), force anything, or destroy a snapshot not asked for.
    """


@hookspec
def hold_snapshots(ctx: Context, snapshots: list[str], tag: str) -> bool | None:
    """Place the hold ``tag`` on each of ``snapshots`` (full names), so nothing can destroy them.

    Called by restores before they rely on a snapshot. A hold that is already there is not an error.
    Return value: True when the dialect has holds and they are in place, False when it has none (the
    caller must then protect the snapshot another way); ``None`` means "not mine".
    Must never: release other tags.
    """


@hookspec
def release_snapshots(ctx: Context, snapshots: list[str], tag: str) -> bool | None:
    """Release the hold ``tag`` from each of ``snapshots``; a hold that is not there is not an error.

    Called when a restore is deleted. Return value: True when done; ``None`` means "not mine".
    Must never: destroy anything or release other tags.
    """


@hookspec
def clone(ctx: Context, snapshot: str, target: str, properties: Mapping[str, str]) -> str | None:
    """Clone the snapshot ``snapshot`` (``pool/ds@name``) into the new dataset ``target``.

    Called by restores. Refuses (raises PermanentError) when ``target`` exists. ``properties`` are set
    on the clone as it is made (e.g. ``readonly=on`` and the restore's user property).

    Return value: the clone's mountpoint; ``None`` means "not mine". Must never:
    touch the source dataset or overwrite an existing dataset.
    """


@hookspec(firstresult=True)
def read_secret(ctx: Context, ref: SecretRef) -> str | None:
    """The value a ``SecretRef`` with ``name`` and ``key`` (a Kubernetes Secret) points to.

    Called while planning (so: synchronously, and it must be cheap) by plugins that need a
    password, e.g. the SMB plugin for a NASUser's ``passwordSecretRef``. File references
    (``ref.file``) are read by the plugin itself and never reach this hook. A change of the
    Secret must make the source ask for a pass (``ctx.request_reconcile``), so users see it.

    Return value: the value as text; ``None`` when no installed plugin knows Secrets (the caller
    reports ``SecretNotSupported``). Raises ``KeyError`` with a message naming the Secret and the
    key when the Secret or the key does not exist. Must never: do I/O (answer from what the
    plugin keeps), log the value.
    """


@hookspec(firstresult=True)
def plan_workload(ctx: Context, owner: Resource, workload: Workload | None) -> WorkloadPlan | None:
    """Plan how to make the cluster run ``workload`` for ``owner`` (``None``: run nothing for it any more).

    Called while planning ``owner`` by a plugin that runs its program in a pod rather than on the host:
    the SMB plugin in pod mode, once per SMB share, from ``plan_share`` and from ``plan_absent``.
    The plugin that answers keeps what the cluster runs in memory (it watches it), so this is cheap.

    Return value: a :class:`~nasd.workloads.WorkloadPlan` whose actions create, update or delete the
    cluster objects (none when the cluster already runs exactly this), and status fields for the
    owner (e.g. the Service and its node port). ``None``: no installed plugin runs workloads (the
    caller reports it). Must never: call the API server itself (only in the returned actions);
    touch objects it did not make for this owner.
    """


# -- 4. reporting ---------------------------------------------------------------


@hookspec
def status_changed(ctx: Context, resource: Resource) -> None:
    """Tell plugins that ``resource``'s status (conditions or fields) changed.

    Called after a pass for every desired resource whose status differs from before
    (and for one waiting to be replaced, when that wait begins), and for a resource whose
    deletion cannot be completed yet (its Ready condition says why: a Destroy refused, a
    busy dataset), so a Kubernetes object held by its finalizer shows the reason. The
    Kubernetes watcher writes it back through the status subresource.

    Return value: ignored. Must never: modify ``resource`` or block the pass for
    long (queue slow work on a task).
    """


@hookspec
def resource_deleted(ctx: Context, resource: Resource) -> None:
    """Tell plugins that the deletion of ``resource`` is complete on this node.

    Called after a pass in which the ``plan_absent`` plan of a resource that left the desired
    state ran to its end (or had nothing to do) and the core forgot it. The Kubernetes watcher
    removes its finalizer here, so the object leaves the cluster only once the node is clean.
    Not called for a deletion that failed or is refused: that one is retried, and its reason is
    reported through ``status_changed``.

    Return value: ignored. Must never: modify ``resource`` or block the pass for long.
    """


# -- 5. teardown ----------------------------------------------------------------


@hookspec
def shutdown(ctx: Context) -> None:
    """Release what ``startup`` took (processes the plugin started, open files).

    Called once when the daemon or one-shot command ends, even after an error, and
    also when ``startup`` failed part-way: release only what was actually taken.
    Return value: ignored. Must never: change managed resources (datasets, shares).
    """
