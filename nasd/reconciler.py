"""The reconcile loop: observe the system once, plan each resource as a pure diff, apply in
dependency order, and write the outcome into Conditions.

One pass:
  1. take the merged desired state from the feed and give each resource its generation;
  2. ``observe`` (each plugin reads what it manages, in as few commands as it can);
  3. pools first, then datasets (parents first), then the rest, one group of a phase at a time:
     for each resource of the group, check its dependencies are Ready and ask its owner plugin
     for a plan; then run the group's plans, ``applyConcurrency`` at a time (each plan's actions in order);
  4. for every resource reconciled before but no longer desired: plan and run its deletion;
  5. save status (atomically) and tell plugins what changed.

A pass of the loop woken by a change of the desired state is incremental: it plans what changed and what that
touches (``Reconciler._select``), the others keep their status as it is. The first pass, any wake from a plugin and
the periodic resync plan everything.

A failing resource does not stop the others. Failures back off exponentially; a
periodic resync re-observes everything, which is what corrects drift. Nothing here
marks a resource "in progress", so a ``kill -9`` at any point leaves nothing the next
pass cannot converge.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from pydantic import ValidationError

from .aio import wait_event
from .calling import Hooks
from .conditions import remove_condition, set_condition
from .context import Context
from .errors import CommandError, OwnerError, PermanentError, TemporaryError
from .feed import DesiredFeed, Key
from .metrics import Metrics
from .models import Resource, Status, ZDataset
from .observation import Observed
from .planning import Action, Plan
from .state import StatusStore

log = logging.getLogger("nasd.reconciler")

#: kinds whose change an incremental pass plans with what depends on it and what it depends on only (see
#: Reconciler._select); a change to any other kind plans everything
INCREMENTAL_KINDS = frozenset({"NASShare", "ZDataset"})


@dataclass
class Outcome:
    key: Key
    ready: bool
    reason: str
    message: str
    actions: list[Action] = field(default_factory=list)
    #: a dry run's changes that wait for a confirmation (conditions with reason WaitingForConfirmation)
    waiting: list[str] = field(default_factory=list)


@dataclass
class PassReport:
    outcomes: list[Outcome] = field(default_factory=list)
    deleted: list[Key] = field(default_factory=list)
    mutated: bool = False
    seconds: float = 0.0

    @property
    def all_ready(self) -> bool:
        return all(o.ready for o in self.outcomes)

    def planned(self) -> list[tuple[Key, Action]]:
        return [(o.key, a) for o in self.outcomes for a in o.actions]


def _order(resource: Resource) -> tuple[int, int, str]:
    depth = resource.spec.path.count("/") if isinstance(resource, ZDataset) else 0
    return (resource.phase, depth, resource.name)


def set_status_fields(status: Status, fields: Mapping[str, Any]) -> None:
    """Set what a plan reports in a resource's status, each field checked against the kind's status model
    (ValueError naming the field when the model has no such field or the value is not of its type)."""
    model = type(status)
    for name, value in fields.items():
        if name in ("conditions", "observedGeneration"):
            raise ValueError(f"a plugin reported status field {name!r}, which is the core's to set")
        if name not in model.model_fields:
            raise ValueError(f"a plugin reported status field {name!r}, which {model.__name__} does not have")
        try:
            model.__pydantic_validator__.validate_assignment(status, name, value)
        except ValidationError as e:
            raise ValueError(f"a plugin reported status field {name!r} of the wrong type: "
                             f"{e.errors()[0]['msg']}") from None


class Reconciler:
    def __init__(self, ctx: Context, hooks: Hooks, feed: DesiredFeed, store: StatusStore, metrics: Metrics):
        self.ctx = ctx
        self.hooks = hooks
        self.feed = feed
        self.store = store
        self.metrics = metrics
        self.current: dict[Key, Resource] = dict(store.known())
        self._backoff: dict[Key, tuple[int, float, int]] = {}  # attempts, retry-at, generation
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._wakes = 0  # wake() calls so far; a pass notes the count it started with
        self._wakes_at_pass = 0
        self._in_pass: set[Key] = set()  # what the running pass desires
        self._settle = False
        self._next_followup: float | None = None
        self._state_retries = 0  # passes in a row whose state could not be written
        self._full = True  # the next pass of the loop plans everything (set by any wake but the feed's)
        self._touched: set[Key] = set()  # what the last pass changed on the system (planned again by the next)
        self._needs: dict[Key, tuple[Any, list[Key]]] = {}  # key -> (its spec, what it depends on), see _select
        #: whether resources reconciled before and no longer desired are deleted (the daemon: yes;
        #: `nasd reconcile -f FILE`: only with --prune, as the files may be only part of what it manages)
        self.prune = True
        #: set once the daemon loop's first pass is over (``nasd serve`` then tells systemd it is ready)
        self.first_pass_done = asyncio.Event()

    # -- one pass -------------------------------------------------------------

    def holds(self, key: Key) -> bool:
        """Whether ``key`` is reconciled, or is being planned by the pass that runs now."""
        return key in self.current or key in self._in_pass

    async def run_pass(self, *, dry_run: bool = False, ignore_backoff: bool = False,
                       incremental: bool = False) -> PassReport:
        """One pass. ``incremental``: plan only what changed since the last pass and what that touches (see
        :meth:`_select`); the pass falls back to planning everything when it cannot tell."""
        async with self._lock:
            start = time.monotonic()
            self._wakes_at_pass = self._wakes
            try:
                report = await self._pass(dry_run=dry_run, ignore_backoff=ignore_backoff or dry_run,
                                          incremental=incremental and not dry_run)
            finally:
                self._in_pass = set()
            report.seconds = time.monotonic() - start
            if not dry_run:
                self.metrics.observe_pass(report.seconds)
                self.metrics.set_resources(self.current.values())
            return report

    async def _pass(self, *, dry_run: bool, ignore_backoff: bool, incremental: bool = False) -> PassReport:
        report = PassReport()
        desired_raw, conflicts = self.feed.snapshot()
        if not dry_run:
            self._in_pass = set(desired_raw)
        #: the keys this pass plans (None: every one); the others are what they are, read-only
        selected = self._select(desired_raw, conflicts) if incremental else None
        log.debug("pass: planning %s of %d resources", "all" if selected is None else len(selected), len(desired_raw))
        desired: dict[Key, Resource] = {}
        for key, incoming in desired_raw.items():
            if selected is not None and key not in selected:
                desired[key] = self.current[key]  # (unchanged, and nothing it depends on changed)
                continue
            # The spec is shared with the feed (nothing writes to a spec); metadata and status are
            # the pass's own, so a pass that stops half-way leaves the last complete one in place.
            resource = incoming.model_copy(update={"metadata": incoming.metadata.model_copy()})
            resource.metadata.generation = self.store.generation_for(resource)
            previous = self.current.get(key)
            if previous is not None and type(previous.status) is type(resource.status):
                # statuses change by assignment (conditions are replaced, not edited): a shallow
                # copy with its own conditions list is a full copy, at a fraction of the cost
                resource.status = previous.status.model_copy(update={"conditions": list(previous.status.conditions)})
            else:
                resource.status = type(resource.status)()
            desired[key] = resource
        before = {k: r.status.model_dump(mode="json") for k, r in self.current.items()
                  if selected is None or k in selected}

        try:
            observed = await self.hooks.observe(self.ctx, list(desired.values()))
        except Exception as e:  # a plugin failing to observe: its plans will say so
            log.error("observe failed: %s", e)
            observed = Observed.failed(e)

        # A resource changed in a way its plugin cannot converge in place (e.g. a share's protocol):
        # the old one is removed first, through the plugin that made it, then the new one is created.
        replacing: dict[Key, str] = {}
        source_errors = self.feed.errors()
        for key, resource in desired.items():
            previous = self.current.get(key)
            why = previous.replaced_by(resource) if previous is not None and previous is not resource else None
            if why is None:
                continue
            if source_errors:
                replacing[key] = f"{why}: held while a source of desired state reports errors"
                continue
            done, actions = await self._delete(previous, observed, dry_run)
            if dry_run:
                report.outcomes.append(Outcome(key, True, "Replacing", why, actions))
            elif not done:
                replacing[key] = f"{why}: the old one could not be removed yet"
            else:
                report.mutated = report.mutated or bool(actions)
                log.info("replaced %s/%s (%s)", *key, why)

        # One group = resources of one phase and depth, which never depend on each other: all of a
        # group is planned before any of it is applied, so a plugin that keeps one file for many
        # resources (smb.conf) writes it once for the whole group, not once per resource.
        planning = desired.values() if selected is None else [r for k, r in desired.items() if k in selected]
        for _, group in itertools.groupby(sorted(planning, key=_order), key=lambda r: _order(r)[:2]):
            planned = [(r, await self._plan(r, desired, conflicts, observed, dry_run, ignore_backoff, replacing))
                       for r in group]
            for outcome in await self._run_group(planned, dry_run):
                report.outcomes.append(outcome)
                if outcome.actions and not dry_run:
                    report.mutated = True

        # released while this pass was being planned: still in its snapshot, handled by the next pass
        released = self.feed.released() - desired.keys()
        gone = [r for k, r in self.current.items() if k not in desired and k not in released] if self.prune else []
        if not dry_run and released:
            for key in released & self.current.keys():  # another node manages it now: nothing to undo here
                log.info("released %s/%s: no longer managed here, left as it is", *key)
                self._forget(key)
            self.feed.forget_released(released)
        if gone and source_errors:
            # a file that does not parse, a folder not mounted: what looks deleted may only be unreadable
            log.warning("holding %d deletion(s) while a source reports errors: %s", len(gone),
                        "; ".join(p for problems in source_errors.values() for p in problems)[:500])
            gone = []
        for resource, (done, actions) in await self._delete_groups(sorted(gone, key=_order, reverse=True),
                                                                    observed, dry_run):
            if dry_run:
                report.outcomes.append(Outcome(resource.key, True, "Deleting", "", actions))
                continue
            report.mutated = report.mutated or bool(actions)
            if done:
                report.deleted.append(resource.key)

        if dry_run:
            return report
        deleted = [r for r in (self._forget(key) for key in report.deleted) if r is not None]
        for key, resource in desired.items():
            if selected is not None and key not in selected:
                continue
            if key in replacing:  # the old version stays what is known until it is removed
                old = self.current[key]
                if set_condition(old.status, "Ready", False, "Replacing", replacing[key], old.metadata.generation):
                    self.store.save(old)
                    await self._notify(old)
                continue
            self.current[key] = resource
            self.store.save(resource)
            if before.get(key) != resource.status.model_dump(mode="json"):
                await self._notify(resource)
        state_written = self.store.flush()  # (a full or read-only state folder: logged, the old file kept)
        for resource in deleted:
            try:
                await self.hooks.resource_deleted(self.ctx, resource)
            except Exception:
                log.exception("resource_deleted hook failed for %s/%s", resource.kind, resource.name)
        # what a follow-up pass (incremental) plans again: what this one changed on the system
        self._touched = {o.key for o in report.outcomes if o.actions} | set(report.deleted)
        if report.mutated:
            # re-observe shortly: verifies convergence and fills in status (used, available, ...)
            self._next_followup = time.monotonic() + 0.3
        self._state_retries = 0 if state_written else self._state_retries + 1
        if not state_written:  # written by a pass soon, with backoff, even if nothing else happens
            retry = time.monotonic() + min(2.0 ** self._state_retries, self.ctx.config.maxBackoffSeconds, 60.0)
            self._next_followup = min(self._next_followup or retry, retry)
        return report

    def _select(self, desired: Mapping[Key, Resource], conflicts: Mapping[Key, list[str]]) -> set[Key] | None:
        """What an incremental pass plans (None: everything): each resource declared anew, changed or deleted since
        the last pass (the feed hands over a new object for every change, so an unchanged one is the very object the
        last pass planned), what the last pass changed on the system (its follow-up verifies it), what is not Ready,
        backing off or in conflict; and with each of those, what depends on it (transitively) and what it depends on
        directly (e.g. a Time Machine share's quota is its dataset's property). A change to a kind other plugins read
        across resources (a user, a group, a snapshot schedule, a pool...) plans everything, as does any wake but
        the feed's and the periodic resync, which is what corrects drift."""
        changed = {k for k, r in desired.items() if (c := self.current.get(k)) is None or c.spec is not r.spec}
        removed = self.current.keys() - desired.keys()
        if any(kind not in INCREMENTAL_KINDS for kind, _ in changed | removed):
            return None
        seeds = changed | removed | self._touched | self._backoff.keys() | conflicts.keys()
        seeds |= {k for k in desired.keys() - changed if not self.current[k].ready}
        dependents: dict[Key, list[Key]] = {}
        needs: dict[Key, list[Key]] = {}
        for key, resource in desired.items():
            memo = self._needs.get(key)
            if memo is None or memo[0] is not resource.spec:  # (asked again only when the spec changed)
                memo = self._needs[key] = (resource.spec, [(kind, name) for kind, name, _ in resource.dependencies()])
            needs[key] = memo[1]
            for dep in needs[key]:
                dependents.setdefault(dep, []).append(key)
        selected: set[Key] = set()
        todo = list(seeds)
        while todo:
            key = todo.pop()
            if key in selected:
                continue
            selected.add(key)
            todo.extend(dependents.get(key, ()))
        for key in list(selected):
            selected.update(needs.get(key, ()))
        for key in removed:
            self._needs.pop(key, None)
        return selected & desired.keys()

    def _forget(self, key: Key) -> Resource | None:
        """Drop ``key`` from what is reconciled (its state and backoff too); the resource it was, if any."""
        self.store.forget(key)
        self._backoff.pop(key, None)
        return self.current.pop(key, None)

    def _finish(self, resource: Resource, dry_run: bool, ok: bool, reason: str, message: str,
                actions: list[Action] | None = None) -> Outcome:
        gen = resource.metadata.generation
        if not dry_run:
            set_condition(resource.status, "Ready", ok, reason, message, gen)
            resource.status.observedGeneration = gen
        return Outcome(resource.key, ok, reason, message, actions or [])

    async def _plan(
        self,
        resource: Resource,
        desired: dict[Key, Resource],
        conflicts: dict[Key, list[str]],
        observed: Observed,
        dry_run: bool,
        ignore_backoff: bool,
        replacing: dict[Key, str],
    ) -> Plan | Outcome:
        """The resource's plan, or its final Outcome when there is nothing to run."""
        key, gen = resource.key, resource.metadata.generation

        def finish(ok: bool, reason: str, message: str) -> Outcome:
            return self._finish(resource, dry_run, ok, reason, message)

        if key in replacing:
            return finish(False, "Replacing", replacing[key])
        if key in conflicts:
            return finish(False, "Conflict", f"declared by more than one source: {', '.join(conflicts[key])}")

        attempts, retry_at, failed_gen = self._backoff.get(key, (0, 0.0, gen or 0))
        if attempts and failed_gen == gen and not ignore_backoff and time.monotonic() < retry_at:
            ready = resource.condition("Ready")
            return Outcome(key, False, ready.reason if ready else "Retrying", ready.message if ready else "")

        dependencies: dict[Key, Resource] = {}
        for kind, name, reason in resource.dependencies():
            dep = desired.get((kind, name))
            if dep is None:
                return finish(False, reason, f"{kind} {name} is not declared")
            if not dep.available:
                why = dep.condition("Ready")
                detail = f" ({why.reason}: {why.message})" if why and why.message else ""
                return finish(False, reason, f"waiting for {kind} {name} to be Ready{detail}")
            dependencies[(kind, name)] = dep

        try:
            return await self.hooks.plan(self.ctx, resource, dependencies, observed)
        except OwnerError as e:
            return finish(False, e.reason, str(e))
        except (TemporaryError, PermanentError) as e:
            self._fail(key, gen, e)
            return finish(False, e.reason, str(e))
        except Exception as e:  # a plugin bug must not stop the other resources
            log.exception("planning %s/%s failed", *key)
            self._fail(key, gen, e)
            return finish(False, "PlanFailed", f"{type(e).__name__}: {e}")

    async def _run_group(self, planned: list[tuple[Resource, Plan | Outcome]], dry_run: bool) -> list[Outcome]:
        """Run the plans of one group (resources that never depend on each other), ``applyConcurrency`` at a time;
        their outcomes in the group's order. Each plan runs its own actions in order and keeps its own outcome, so
        one failing does not stop the others; a program a plugin bounds (``Runner.bound``) keeps its bound."""
        outcomes: dict[int, Outcome] = {}
        runs: list[tuple[int, Resource, Plan]] = []
        for i, (resource, plan) in enumerate(planned):
            if isinstance(plan, Outcome):
                outcomes[i] = plan
            else:
                runs.append((i, resource, plan))
        concurrency = self.ctx.config.applyConcurrency
        if dry_run or concurrency == 1 or sum(1 for _, _, plan in runs if plan.actions) < 2:
            for i, resource, plan in runs:
                outcomes[i] = await self._run(resource, plan, dry_run)
        else:
            gate = asyncio.Semaphore(concurrency)

            async def run(i: int, resource: Resource, plan: Plan) -> None:
                async with gate:
                    outcomes[i] = await self._run(resource, plan, dry_run)

            await asyncio.gather(*(run(*one) for one in runs))
        return [outcomes[i] for i in range(len(planned))]

    async def _run(self, resource: Resource, plan: Plan, dry_run: bool) -> Outcome:
        """Run a resource's plan (or, in a dry run, only record it) and set its Ready condition."""
        key, gen = resource.key, resource.metadata.generation
        status = resource.status

        def finish(ok: bool, reason: str, message: str, actions: list[Action] | None = None) -> Outcome:
            return self._finish(resource, dry_run, ok, reason, message, actions)

        if dry_run:
            # Nothing of a dry run is kept: marking the pass's copy Ready lets dependents plan as if applied.
            if plan.problem is None:
                set_condition(status, "Ready", True, "Planned", "", gen)
            return Outcome(key, plan.problem is None, plan.problem.reason if plan.problem else "Planned",
                           plan.problem.message if plan.problem else "", plan.actions,
                           [c.message for c in plan.conditions if c.ok and c.reason == "WaitingForConfirmation"])

        for event in plan.events:
            log.warning("%s/%s: %s", resource.kind, resource.name, event, extra={"resource": f"{key[0]}/{key[1]}"})
        try:
            await self._apply(plan.actions)
        except CommandError as e:
            self._fail(key, gen, TemporaryError(str(e)) if e.transient else e)
            hint = ("\nstill busy after retries; nasd tries again with backoff. A process may hold a file or its "
                    "working folder open there (`fuser -vm PATH` names it)") if e.transient else ""
            return finish(False, "Busy" if e.transient else "CommandFailed",
                          f"{e}\n{e.stderr.strip()}"[:1024 - len(hint)] + hint, plan.actions)
        except (TemporaryError, PermanentError) as e:
            self._fail(key, gen, e)
            return finish(False, e.reason, str(e), plan.actions)
        except Exception as e:  # a plugin bug or the system (a full disk): this resource fails, not the pass
            log.exception("applying %s/%s failed", *key)
            self._fail(key, gen, e)
            return finish(False, "ApplyFailed", f"{type(e).__name__}: {e}", plan.actions)

        try:
            set_status_fields(status, plan.status)
        except ValueError as e:  # a plugin's bug: what it reports is not in the kind's status model
            log.error("%s/%s: %s", *key, e)
            self._fail(key, gen, e)
            return finish(False, "StatusInvalid", str(e), plan.actions)
        for change in plan.conditions:
            set_condition(status, change.type, change.ok, change.reason, change.message, gen)
        for type_ in plan.removed_conditions:
            remove_condition(status, type_)
        self._backoff.pop(key, None)
        if plan.problem:
            return finish(False, plan.problem.reason, plan.problem.message, plan.actions)
        if plan.actions:
            message = "applied: " + "; ".join(a.description for a in plan.actions)
        else:
            message = "as specified"
        return finish(True, "Ready", message, plan.actions)

    async def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            log.info("apply: %s", action.render(), extra={"action": action.description})
            if action.argv is not None:
                await self.ctx.runner.run(action.argv, mutating=True)
            else:
                assert action.func is not None
                await action.func(self.ctx)

    async def _delete_groups(self, gone: list[Resource], observed: Observed,
                             dry_run: bool) -> list[tuple[Resource, tuple[bool, list[Action]]]]:
        """Delete ``gone`` (children first: in reverse order of phase and depth), one group after the other and the
        resources of a group ``applyConcurrency`` at a time; each with its outcome, in the order given."""
        out: list[tuple[Resource, tuple[bool, list[Action]]]] = []
        concurrency = 1 if dry_run else self.ctx.config.applyConcurrency
        for _, group in itertools.groupby(gone, key=lambda r: _order(r)[:2]):
            members = list(group)
            if concurrency == 1 or len(members) == 1:
                out += [(r, await self._delete(r, observed, dry_run)) for r in members]
                continue
            gate = asyncio.Semaphore(concurrency)

            async def delete(resource: Resource) -> tuple[bool, list[Action]]:
                async with gate:
                    return await self._delete(resource, observed, dry_run)

            out += zip(members, await asyncio.gather(*(delete(r) for r in members)))
        return out

    async def _delete(self, resource: Resource, observed: Observed, dry_run: bool) -> tuple[bool, list[Action]]:
        key = resource.key
        try:
            plan = await self.hooks.plan_absent(self.ctx, resource, observed)
        except OwnerError as e:
            if e.reason == "NoPlugin":
                return True, []  # nobody manages it any more: nothing on the system to undo
            if not dry_run:
                await self._set_deleting(resource, False, e.reason, str(e))
            return False, []
        except Exception as e:
            if not dry_run:
                await self._set_deleting(resource, False, "DeleteFailed", str(e))
            return False, []
        if dry_run:
            return False, plan.actions
        if plan.problem:
            await self._set_deleting(resource, False, plan.problem.reason, plan.problem.message)
            return False, []
        try:
            await self._apply(plan.actions)
        except (CommandError, TemporaryError, PermanentError) as e:
            await self._set_deleting(resource, False, getattr(e, "reason", "DeleteFailed"), str(e))
            return False, plan.actions
        except Exception as e:
            log.exception("deleting %s/%s failed", *key)
            await self._set_deleting(resource, False, "DeleteFailed", f"{type(e).__name__}: {e}")
            return False, plan.actions
        log.info("deleted %s/%s", *key)
        return True, plan.actions

    async def _set_deleting(self, resource: Resource, ok: bool, reason: str, message: str) -> None:
        if set_condition(resource.status, "Ready", ok, reason, message, resource.metadata.generation):
            self.store.save(resource)
            self.store.flush()
            await self._notify(resource)  # e.g. a Kubernetes object held by its finalizer shows why
        log.warning("deleting %s/%s: %s: %s", resource.kind, resource.name, reason, message)

    def _fail(self, key: Key, gen: int | None, error: Exception) -> None:
        attempts = self._backoff.get(key, (0, 0.0, 0))[0] + 1
        base = error.delay if isinstance(error, TemporaryError) else 1.0
        delay = min(base * 2 ** (attempts - 1), self.ctx.config.maxBackoffSeconds)
        self._backoff[key] = (attempts, time.monotonic() + delay, gen or 0)

    async def _notify(self, resource: Resource) -> None:
        try:
            await self.hooks.status_changed(self.ctx, resource)
        except Exception:
            log.exception("status_changed hook failed for %s/%s", resource.kind, resource.name)

    # -- the daemon loop ------------------------------------------------------

    def wake(self, why: str = "", settle: bool = True, full: bool = True) -> None:
        """Start a pass soon: after a short pause when ``settle`` (a burst of changes then makes one
        pass), at once for a single applied or deleted object. ``full``: the pass plans everything (False: only
        what changed in the desired state, and what that touches; the feed's wakes)."""
        log.debug("wake: %s", why)
        self._full = self._full or full
        self._settle = self._settle or settle
        self._wakes += 1
        self._wake.set()

    def wake_pending(self) -> bool:
        """Whether something asked for another pass since the current one started."""
        return self._wakes > self._wakes_at_pass

    def take_wake(self) -> bool:
        """Whether something asked for a pass (e.g. a source changed desired state during the last one); clears it."""
        woken = self._wake.is_set()
        self._wake.clear()
        return woken

    def next_retry(self) -> float | None:
        times = [t for _, t, _ in self._backoff.values()]
        if self._next_followup is not None:
            times.append(self._next_followup)
        return min(times) if times else None

    async def loop(self) -> None:
        """Reconcile on every change, every retry due, and every ``resyncSeconds``; never returns."""
        resync_at = 0.0
        while True:
            now = time.monotonic()
            deadline = min([resync_at] + ([self.next_retry()] if self.next_retry() else []))
            if deadline > now:
                if await wait_event(self._wake, deadline - now) and self._settle:
                    await asyncio.sleep(0.02)  # a burst of changes makes one pass
            self._wake.clear()
            self._settle = False
            self._next_followup = None
            full, self._full = self._full, False
            if time.monotonic() >= resync_at:
                resync_at = time.monotonic() + self.ctx.config.resyncSeconds
                full = True
            try:
                await self.run_pass(incremental=not full)
            except Exception:
                log.exception("reconcile pass failed")
                self._full = True  # (what it was to plan is planned again, with everything else)
                await asyncio.sleep(1.0)
            self.first_pass_done.set()
