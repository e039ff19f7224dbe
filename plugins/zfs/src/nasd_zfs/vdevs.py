"""Disks changed by editing a pool's ``spec.vdevs``: the difference between the spec and the layout `zpool status`
shows, as the one command that moves the pool towards the spec (`zpool replace`, `attach`, `add`, `detach`,
`remove`), held for a confirmation when it cannot be undone or lowers redundancy, refused when ZFS cannot do it.

Pure planning, besides :func:`observe_devices` (the sizes of the devices named, and whether a new one holds data),
which the observation calls. Nothing here runs a command.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from nasd.plugin import Action, ConditionChange, Plan, Problem, ZPool

from .devices import DataChecks
from .parse import PoolInfo

if TYPE_CHECKING:
    from .health import PoolHealth
    from .plan import ZfsObservation

#: the annotation that lets a held change go ahead; its value names the changes it confirms (their tokens,
#: comma-separated), so a confirmation given for one change never lets another one through
CONFIRM_ANNOTATION = "nasd.io/confirm-vdevs"
#: the condition a held change sets (removed when nothing waits)
PENDING_CONDITION = "VdevChangePending"
#: set while a resilver or a replace is under way: the pool is not Ready (its layout is not yet the spec's) but it
#: serves, so its datasets, shares and schedules go on (removed once it is Ready)
AVAILABLE_CONDITION = "Available"
#: how long after a resilver ended a replace still under way is taken as ZFS about to detach the old device
RESILVER_DONE_SECONDS = 60.0
#: how a held change waits (the snapshot schedule's pruning waits the same way)
WAITING = "WaitingForConfirmation"
#: the reasons of a refusal: what the spec asks, ZFS cannot do (nothing of the pool's plan runs)
REFUSED = frozenset({"VdevTypeChange", "RaidzCannotGrow", "RaidzCannotShrink", "DetachWouldLoseData",
                     "VdevsCannotMerge", "VdevCannotSplit", "VdevCannotBeRemoved", "MissingDevice", "DeviceHoldsData",
                     "DeviceTooSmall"})

_GROUP = re.compile(r"^(mirror|raidz([123])?|replacing|spare|indirect|draid\S*)-\d+$")
#: redundancy of a vdev type: how many devices may fail (a raidz's parity, a mirror's width - 1)
_PARITY = {"raidz1": 1, "raidz2": 2, "raidz3": 3}


# -- what is there --------------------------------------------------------------------------------------------


@dataclass
class Leaf:
    """A device of the pool: ``path`` as a spec names it (a missing device's "was /path"), ``name`` as printed
    (zfs-fuse prints a missing device's guid)."""

    path: str
    name: str
    state: str = ""
    errors: int = 0

    @property
    def healthy(self) -> bool:
        """ONLINE without read, write or checksum errors (unknown without `zpool status` health: healthy)."""
        return self.state in ("ONLINE", "") and self.errors == 0

    def describe(self) -> str:
        if not self.state:
            return self.path
        errors = f", {self.errors} errors" if self.errors else ""
        return f"{self.path} ({self.state}{errors})"


@dataclass
class Top:
    """A top-level data vdev: a disk, a mirror or a raidz, as `zpool status` names it (mirror-0, or the disk)."""

    name: str
    type: str  # disk | mirror | raidz1 | raidz2 | raidz3 | other
    leaves: list[Leaf] = field(default_factory=list)
    #: a replacing-N (or spare-N) group in it: a replace (or a hot spare) not finished yet
    busy: list[list[Leaf]] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [leaf.path for leaf in self.leaves]

    def describe(self) -> str:
        return self.paths[0] if self.type == "disk" else f"{self.name} ({' '.join(self.paths)})"


def _kind(name: str) -> str:
    m = _GROUP.match(name)
    if not m:
        return "disk"
    if m.group(1).startswith("raidz"):
        return f"raidz{m.group(2) or '1'}"
    return m.group(1) if m.group(1) in ("mirror", "replacing", "spare", "indirect") else "other"


def _leaf(device: Any) -> Leaf:
    note = getattr(device, "note", "") or ""
    path = note[4:].strip() if note.startswith("was /") else device.name
    return Leaf(path=os.path.normpath(path), name=device.name, state=device.state,
                errors=device.read + device.write + device.cksum)


def observed_layout(info: PoolInfo, health: "PoolHealth | None") -> list[Top]:
    """The pool's top-level data vdevs with their devices (and their states, from ``health`` when given)."""
    tops: list[Top] = []
    if health is None:
        for i, v in enumerate(info.vdevs):
            tops.append(Top(name=v.devices[0] if v.type == "disk" and v.devices else f"{v.type}-{i}", type=v.type,
                            leaves=[Leaf(os.path.normpath(d), d) for d in v.devices]))
            if v.type == "other":  # (a replacing-N or spare-N group: something is under way)
                tops[-1].busy.append(tops[-1].leaves)
        return tops
    group: list[Leaf] | None = None  # the replacing-N / spare-N group being read
    group_depth = 0
    for device in health.devices:
        if device.section is not None or device.depth < 1:
            continue
        kind = _kind(device.name)
        if device.depth == 1:
            group = None
            if kind == "indirect":  # (what a `zpool remove` left: no devices)
                continue
            if kind in ("replacing", "spare"):  # a disk of a stripe being replaced
                group, group_depth = [], 1
                tops.append(Top(name=device.name, type="disk", busy=[group]))
            else:
                tops.append(Top(name=device.name, type=kind))
                if kind == "disk":
                    tops[-1].leaves.append(_leaf(device))
            continue
        if not tops:
            continue
        top = tops[-1]
        if group is not None and device.depth <= group_depth:
            group = None
        if kind in ("replacing", "spare"):
            group, group_depth = [], device.depth
            top.busy.append(group)
        elif kind == "disk":
            leaf = _leaf(device)
            top.leaves.append(leaf)
            if group is not None:
                group.append(leaf)
    return tops


# -- what the spec asks -------------------------------------------------------------------------------------


@dataclass
class Unit:
    """A top-level vdev as the spec asks it (a stripe's devices are a disk each); ``index`` in spec.vdevs."""

    type: str  # disk | mirror | raidz1 | raidz2 | raidz3
    devices: list[str]
    index: int

    def describe(self) -> str:
        return self.devices[0] if self.type == "disk" else f"{self.type} {' '.join(self.devices)}"


def spec_units(pool: ZPool) -> list[Unit]:
    units: list[Unit] = []
    for i, vdev in enumerate(pool.spec.vdevs):
        if vdev.type == "stripe":
            units += [Unit("disk", [os.path.normpath(d)], i) for d in vdev.devices]
        else:
            units.append(Unit(vdev.type, [os.path.normpath(d) for d in vdev.devices], i))
    return units


def same_device(spec: str, printed: str) -> bool:
    """Whether the device a spec names is the one `zpool status` prints (OpenZFS puts a whole disk's data in its
    first partition, and prints that: /dev/sdb -> /dev/sdb1, /dev/nvme0n1 -> /dev/nvme0n1p1, by-id -> -part1)."""
    spec, printed = os.path.normpath(spec), os.path.normpath(printed)
    if spec == printed:
        return True
    return spec.startswith("/dev/") and printed in (spec + "1", spec + "p1", spec + "-part1")


# -- the changes ----------------------------------------------------------------------------------------------


@dataclass
class Change:
    """One command that moves the pool towards its spec."""

    argv: list[str]
    what: str  # "replace /v/b (OFFLINE) with /v/c in mirror-0"
    #: why it waits for a confirmation (None: it goes ahead)
    held: str | None = None
    #: devices the command puts into the pool (each must exist, or be a file of spec.files that nasd creates)
    new: list[str] = field(default_factory=list)
    #: the device a replace takes out
    old: Leaf | None = None
    #: the vdev a replace or an attach puts the new device into (its devices' size bounds the new one's)
    top: Top | None = None
    #: runs a resilver: the pool is not Ready until it is done
    resilvers: bool = False
    #: lower runs first: what restores redundancy, then what raises it, then the rest
    order: int = 0

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    @property
    def token(self) -> str:
        """A short fingerprint of exactly this command: the confirmation names it."""
        return hashlib.sha256("\0".join(self.argv).encode()).hexdigest()[:8]


class Refused(Exception):
    """What the spec asks cannot be done by ZFS: nothing runs."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def _redundancy(type_: str, width: int) -> int:
    if type_ == "mirror":
        return width - 1
    return _PARITY.get(type_, 0)


def _vdev_words(unit: Unit) -> list[str]:
    if unit.type == "disk":
        return list(unit.devices)
    return ["raidz" if unit.type == "raidz1" else unit.type, *unit.devices]


def _replace(pool: str, top: Top, old: Leaf, new: str) -> Change:
    where = "" if top.type == "disk" else f" in {top.name}"
    change = Change(["zpool", "replace", pool, old.path, new], f"replace {old.describe()} with {new}{where}",
                    new=[new], old=old, top=top, resilvers=True, order=0 if not old.healthy else 3)
    if old.healthy:
        change.held = (f"{old.path} is healthy (ONLINE, no errors): a healthy device is replaced only when you "
                       "mean it")
    return change


def _removable(dialect_name: str, tops: list[Top]) -> str | None:
    """Why a top-level vdev cannot be removed here (None: `zpool remove` can)."""
    if dialect_name != "openzfs":
        return f"this ZFS ({dialect_name}) cannot remove a top-level vdev (`zpool remove` takes only spares, " \
               "cache and log devices)"
    if any(t.type.startswith("raidz") for t in tops):
        return "ZFS cannot remove a top-level vdev from a pool with raidz vdevs"
    return None


def _compare_pair(pool: str, unit: Unit, top: Top) -> list[Change]:
    """The changes that turn the observed ``top`` into the spec's ``unit`` (they share a device)."""
    spec = f"spec.vdevs[{unit.index}]"
    removed = [leaf for leaf in top.leaves if not any(same_device(d, leaf.path) for d in unit.devices)]
    added = [d for d in unit.devices if not any(same_device(d, leaf.path) for leaf in top.leaves)]
    kept = [leaf for leaf in top.leaves if leaf not in removed]
    same_type = unit.type == top.type or (unit.type == "mirror" and top.type == "disk")
    if not same_type and not (unit.type == "disk" and top.type == "mirror"):
        raise Refused("VdevTypeChange", (
            f"{spec} asks for {unit.describe()}, but the pool has {top.describe()} ({top.type}): ZFS cannot change "
            f"a vdev's type (only a single disk can become a mirror, by attaching a device, and a mirror a single "
            f"disk, by detaching); put {spec} back as it was (to replace a device, name the new one in its place)"))
    changes: list[Change] = []
    if top.type.startswith("raidz"):
        if len(added) > len(removed):
            raise Refused("RaidzCannotGrow", (
                f"{spec} adds {', '.join(added[len(removed):])} to the raidz vdev {top.describe()}: this ZFS cannot "
                "widen a raidz vdev; add a new vdev to spec.vdevs instead"))
        if len(removed) > len(added):
            raise Refused("RaidzCannotShrink", (
                f"{spec} drops {', '.join(leaf.path for leaf in removed[len(added):])} from the raidz vdev "
                f"{top.describe()}: ZFS cannot remove a device from a raidz vdev; put it back in {spec} (to replace "
                "it, name the new device in its place)"))
    pairs = list(zip(removed, added))
    changes += [_replace(pool, top, old, new) for old, new in pairs]
    target = next((leaf for leaf in kept if leaf.healthy), kept[0] if kept else None)
    for n, new in enumerate(added[len(pairs):]):  # a single disk becomes a mirror, a mirror a wider one
        assert target is not None  # (the unit shares a device with the top)
        width = len(top.leaves) + 1 + n
        changes.append(Change(["zpool", "attach", pool, target.path, new],
                              f"attach {new} to {top.describe()}, making a {width}-way mirror", new=[new],
                              top=top, resilvers=True, order=1))
    left = len(top.leaves) - (len(removed) - len(pairs))
    for leaf in removed[len(pairs):]:  # a mirror loses a side
        if not any(k.healthy for k in kept):
            raise Refused("DetachWouldLoseData", (
                f"{spec} drops {leaf.describe()} from {top.describe()}, but no device left in it is healthy: "
                f"detaching it could lose the data; put it back in {spec} and replace the failed devices first"))
        lowered = "a single disk, without redundancy" if left == 1 else f"a {left}-way mirror"
        changes.append(Change(["zpool", "detach", pool, leaf.path], f"detach {leaf.describe()} from {top.name}",
                              held=f"detaching {leaf.path} leaves {top.name} {lowered}", order=4))
    return changes


def compare(pool: ZPool, tops: list[Top], dialect_name: str) -> list[Change]:
    """The changes from the observed layout to the spec's, in the order they are to run; raises Refused when ZFS
    cannot do what the spec asks (then nothing runs, not even the parts it could)."""
    name = pool.name
    units = spec_units(pool)
    matched: dict[int, list[int]] = {}  # top -> the units sharing a device with it
    unit_tops: dict[int, list[int]] = {}
    for u, unit in enumerate(units):
        for t, top in enumerate(tops):
            if any(same_device(d, leaf.path) for d in unit.devices for leaf in top.leaves):
                matched.setdefault(t, []).append(u)
                unit_tops.setdefault(u, []).append(t)
    for u, ts in unit_tops.items():
        if len(ts) > 1:
            raise Refused("VdevsCannotMerge", (
                f"spec.vdevs[{units[u].index}] ({units[u].describe()}) joins devices of different vdevs of the pool "
                f"({'; '.join(tops[t].describe() for t in ts)}): ZFS cannot merge vdevs; put the spec back"))
    for t, us in matched.items():
        if len(us) > 1:
            raise Refused("VdevCannotSplit", (
                f"the pool's vdev {tops[t].describe()} is split over {', '.join(units[u].describe() for u in us)} in "
                "spec.vdevs: ZFS cannot split a vdev (`zpool split` makes a new pool); put the spec back"))
    changes: list[Change] = []
    for t, us in matched.items():
        changes += _compare_pair(name, units[us[0]], tops[t])
    lone_units = [u for u in range(len(units)) if u not in unit_tops]
    lone_tops = [t for t in range(len(tops)) if t not in matched]
    # a vdev none of whose devices is in the spec, and a spec vdev of the same shape none of whose devices is in the
    # pool: every device replaced (one at a time: the pass after the first replace matches them by that device)
    for t in list(lone_tops):
        top = tops[t]
        twin = next((u for u in lone_units if units[u].type == top.type and len(units[u].devices) == len(top.leaves)),
                    None)
        if twin is not None and not top.busy:
            lone_tops.remove(t)
            lone_units.remove(twin)
            changes += [_replace(name, top, old, new) for old, new in zip(top.leaves, units[twin].devices)]
    if lone_tops:
        why = _removable(dialect_name, tops)
        if why is not None:
            gone = "; ".join(tops[t].describe() for t in lone_tops)
            raise Refused("VdevCannotBeRemoved", (
                f"the pool's vdev {gone} is not in spec.vdevs: {why}; put it back in spec.vdevs (to replace a device, "
                "name the new one in its place)"))
        for t in lone_tops:
            changes.append(Change(["zpool", "remove", name, tops[t].name], f"remove the vdev {tops[t].describe()}",
                                  held=f"removing {tops[t].name} copies its data onto the other vdevs and makes the "
                                       "pool smaller", order=5))
    if lone_units:
        new = [units[u] for u in lone_units]
        least = min((_redundancy(t.type, len(t.leaves)) for t in tops), default=0)
        weaker = [u for u in new if _redundancy(u.type, len(u.devices)) < least]
        mixed = any((u.type, len(u.devices)) != (t.type, len(t.leaves)) for u in new for t in tops)
        argv = ["zpool", "add", *(["-f"] if mixed else []), name, *[w for u in new for w in _vdev_words(u)]]
        why = _removable(dialect_name, tops)
        held = ("a top-level vdev can be taken out again only by `zpool remove`, which copies its data onto the "
                "other vdevs" if why is None else f"a top-level vdev cannot be taken out again: {why}")
        if weaker:
            held += (f"; {', '.join(u.describe() for u in weaker)} has less redundancy than the pool's vdevs: if it "
                     "fails, the whole pool is lost")
        if mixed:
            held += "; -f: zpool refuses a vdev of another kind or width than the pool's without it"
        changes.append(Change(argv, f"add {', '.join(u.describe() for u in new)} to pool {name}",
                              held=held, new=[d for u in new for d in u.devices], order=2))
    return sorted(changes, key=lambda c: c.order)


# -- the plan -------------------------------------------------------------------------------------------------


def _confirmed(pool: ZPool) -> set[str]:
    value = pool.metadata.annotations.get(CONFIRM_ANNOTATION, "")
    return {t.strip() for t in value.split(",") if t.strip()}


def _size(n: int) -> str:
    for unit, shift in (("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.4g}{unit}"
    return f"{n} bytes"


def _check_new(pool: ZPool, change: Change, obs: "ZfsObservation") -> None:
    """The devices a change puts into the pool: there (or to be made from spec.files), holding no data, and not
    smaller than the device they replace."""
    for d in change.new:
        if d not in obs.existing_files and d not in pool.spec.files:
            raise Refused("MissingDevice", f"{d} ({change.what}) does not exist; create it, or list it in spec.files "
                                           "to have nasd create a sparse file")
        held = obs.device_data.get(d)
        if held and not pool.spec.overwriteDevices:
            raise Refused("DeviceHoldsData", f"{d} holds {held}: nasd puts no device that holds data into a pool; "
                                             "if it may be overwritten, say so with spec.overwriteDevices: true")
    top = change.top
    sizes = [s for s in (obs.device_sizes.get(leaf.path) for leaf in top.leaves) if s] if top is not None else []
    if top is not None and sizes:
        new = change.new[0]
        size = obs.device_sizes.get(new) if new in obs.existing_files else pool.spec.files.get(new)
        need = min(sizes)
        if size is not None and size < need:
            raise Refused("DeviceTooSmall", (
                f"{new} ({_size(size)}) is smaller than the devices of {top.describe()} ({_size(need)}): ZFS takes "
                f"no smaller device into a vdev ({change.what}); name a device of at least {_size(need)}"))


def _progress(health: "PoolHealth | None") -> str:
    scan = getattr(health, "scan", None)
    if scan is None or not scan.running or scan.kind != "resilver":
        return ""
    done = f", {scan.percent:.1f}% done" if scan.percent is not None else ""
    left = ""
    if scan.seconds_left is not None:
        m, s = divmod(int(scan.seconds_left), 60)
        h, m = divmod(m, 60)
        left = f", about {h}h{m:02d}m left" if h else f", about {m}m{s:02d}s left" if m else ", less than a minute left"
    return f"resilvering{done}{left}"


def _busy(name: str, tops: list[Top], health: "PoolHealth | None") -> Problem | None:
    """While a replace (or a hot spare) is not finished, or a resilver runs, the layout is left alone."""
    busy = [g for t in tops for g in t.busy]
    progress = _progress(health)
    replacing = "; ".join(" with ".join(leaf.describe() for leaf in g) for g in busy if len(g) >= 2)
    what = f"replacing {replacing}" if replacing else "a replace or a hot spare is under way"
    if progress:
        return Problem("Resilvering", f"pool {name}: {f'{what}, ' if replacing else ''}{progress}; it is Ready once "
                                      "the resilver is done (nothing else in its layout is changed meanwhile)")
    scan = getattr(health, "scan", None)
    if busy and scan is not None and scan.kind == "resilver" and scan.state == "finished" \
            and scan.ended is not None and time.time() - scan.ended < RESILVER_DONE_SECONDS:
        # (OpenZFS detaches the old device in a moment of its own, just after the resilver ends)
        return Problem("Resilvering", f"pool {name}: {f'{what}, ' if replacing else ''}the resilver is done and ZFS "
                                      "detaches the old device next; it is Ready then")
    if busy:
        return Problem("ReplaceIncomplete", (
            f"pool {name}: {what}: no resilver runs, and ZFS has not detached the old device yet (it does once the "
            f"new one is resilvered without errors); see `zpool status {name}`: bring the new device online or "
            f"scrub, or cancel the replace with `zpool detach {name} <new device>`"))
    return None


def _serving(name: str, reason: str) -> ConditionChange:
    return ConditionChange(AVAILABLE_CONDITION, True, reason, (
        f"pool {name} serves its datasets while its devices change; it is Ready once ZFS is done"))


def plan_vdevs(pool: ZPool, info: PoolInfo, obs: "ZfsObservation",
               sparse_file: Callable[[str, int], Action]) -> Plan:
    """What moves the existing pool's layout towards ``pool.spec.vdevs``: at most one command a pass (a change
    moves what the next is reckoned from), none while a replace or a resilver runs; a Problem when ZFS cannot do
    what the spec asks (then nothing runs); the condition ``VdevChangePending`` naming each held command and the
    confirmation that lets it go ahead."""
    name = pool.name
    health = getattr(obs, "health", {}).get(name)
    tops = observed_layout(info, health)
    plan = Plan()
    removing = getattr(health, "removing", "")
    busy = Problem("Removing", f"pool {name}: {removing}; it is Ready once ZFS has copied the vdev's data onto the "
                               "others (nothing else in its layout is changed meanwhile)") if removing \
        else _busy(name, tops, health)
    if busy is not None:
        plan.conditions.append(_serving(name, busy.reason))
    else:
        plan.removed_conditions.append(AVAILABLE_CONDITION)
    if busy is not None and (removing or any(t.busy for t in tops)):
        plan.problem = busy  # (its devices are both in the pool now: reckoned again once ZFS detached the old one)
        return plan
    try:
        changes = compare(pool, tops, obs.dialect.name)
        for change in changes:
            _check_new(pool, change, obs)
    except Refused as e:
        plan.problem = Problem(e.reason, f"pool {name}: {e.message}. Nothing was run")
        plan.removed_conditions.append(PENDING_CONDITION)
        return plan
    confirmed = _confirmed(pool)
    held = [c for c in changes if c.held is not None and c.token not in confirmed]
    if held:
        tokens = ",".join(c.token for c in held)
        plan.conditions.append(ConditionChange(PENDING_CONDITION, True, WAITING, (
            f"pool {name} waits for a confirmation before " + "; and before ".join(
                f"`{c.command}` ({c.what}: {c.held})" for c in held)
            + f". To go ahead, annotate the ZPool {CONFIRM_ANNOTATION}: \"{tokens}\" (it confirms exactly "
              "these commands), or put spec.vdevs back")))
    else:
        plan.removed_conditions.append(PENDING_CONDITION)
    ready = [c for c in changes if c not in held]
    if busy is not None:  # a resilver runs: the next change waits for it
        then = f" Next: {ready[0].command}" if ready else ""
        plan.problem = Problem(busy.reason, busy.message + then)
        return plan
    if not ready:
        return plan
    change = ready[0]
    for d in change.new:
        if d not in obs.existing_files and d in pool.spec.files:
            plan.actions.append(sparse_file(d, pool.spec.files[d]))
    plan.actions.append(Action(f"{change.what} (pool {name})", argv=change.argv))
    if change.resilvers:
        plan.conditions.append(_serving(name, "Resilvering"))
        plan.removed_conditions = [c for c in plan.removed_conditions if c != AVAILABLE_CONDITION]
        plan.problem = Problem("Resilvering", f"pool {name}: {change.what} (`{change.command}`) starts a resilver; "
                                              "the pool is Ready once it is done")
    elif change.argv[:2] == ["zpool", "remove"]:
        plan.conditions.append(_serving(name, "Removing"))
        plan.removed_conditions = [c for c in plan.removed_conditions if c != AVAILABLE_CONDITION]
        plan.problem = Problem("Removing", f"pool {name}: {change.what} (`{change.command}`) copies its data onto the "
                                           "other vdevs; the pool is Ready once that is done")
    elif len(ready) > 1:
        plan.problem = Problem("Converging", f"pool {name}: {change.what}; next: {ready[1].command}")
    return plan


# -- observation ----------------------------------------------------------------------------------------------


def _device_size(path: str) -> int | None:
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return st.st_size
        if stat.S_ISBLK(st.st_mode):
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                return os.lseek(fd, 0, os.SEEK_END)
            finally:
                os.close(fd)
    except OSError:
        return None
    return None


async def observe_devices(ctx: Any, obs: "ZfsObservation", pools: Iterable[ZPool], checks: DataChecks) -> None:
    """For each existing pool a ZPool declares: the size of each device of the spec and of the pool (a stat each),
    and whether a device the spec adds (there, not in the pool yet) holds data (read only then, and once while
    the device is unchanged: a change waiting for its confirmation does not read it at every pass)."""
    for pool in pools:
        info = obs.pools.get(pool.name)
        if info is None:
            continue
        printed = [d for v in info.vdevs for d in v.devices]
        for d in {os.path.normpath(p) for p in printed} | {os.path.normpath(d) for v in pool.spec.vdevs
                                                           for d in v.devices}:
            size = _device_size(d)
            if size is not None:
                obs.device_sizes[d] = size
        for v in pool.spec.vdevs:
            for d in v.devices:
                if d in obs.existing_files and not any(same_device(d, p) for p in printed):
                    found = await checks.holds_data(ctx, d)
                    if found:
                        obs.device_data[d] = found
