"""The plugin contract: documented hook specs, a manager built per use, entry points, blocking,
and async implementations awaited by the core."""

from __future__ import annotations

import inspect

import pytest

from nasd import hookspecs
from nasd.calling import Hooks
from nasd.config import Config
from nasd.context import Context
from nasd.errors import OwnerError, TemporaryError
from nasd.observation import Observed
from nasd.hookspecs import hookimpl
from nasd.models import parse_resource
from nasd.planning import Action, Plan
from nasd.plugins import describe_plugins, make_plugin_manager
from nasd.runner import Runner

SPECS = [
    (name, fn) for name, fn in vars(hookspecs).items()
    if inspect.isfunction(fn) and hasattr(fn, "nasd_spec")
]


def test_the_core_declares_the_required_hooks():
    names = {n for n, _ in SPECS}
    assert {"observe", "plan_pool", "plan_dataset", "plan_share", "take_snapshot", "clone",
            "supply_desired_state"} <= names


#: every hook of a manager with every installed plugin: the core's and those plugins declare (``addhooks``), as
#: datasette's test reads them, over ``pm.hook``
DECLARED = sorted((name, caller.spec.function) for name, caller in vars(make_plugin_manager().hook).items()
                  if caller.spec is not None)


def test_the_hooks_checked_for_documentation_include_those_plugins_declare():
    assert {"smb_share_options", "smb_global_options", "smb_share_status"} <= {n for n, _ in DECLARED}
    assert {n for n, _ in SPECS} <= {n for n, _ in DECLARED}


@pytest.mark.parametrize("name,fn", DECLARED, ids=[n for n, _ in DECLARED])
def test_every_hook_spec_documents_when_it_runs_what_it_returns_and_what_it_must_never_do(name, fn):
    doc = inspect.getdoc(fn) or ""
    assert "Called" in doc, f"{name}: say when it is called"
    assert "Return value" in doc, f"{name}: say what it returns (and what None means)"
    assert "Must never" in doc, f"{name}: say what an implementation must never do"


def test_each_manager_is_fresh_and_installed_plugins_come_from_entry_points():
    a, b = make_plugin_manager(), make_plugin_manager()
    assert a is not b
    a.register(SecondOwner(), name="only-in-a")  # nothing one manager holds leaks into another
    assert a.has_plugin("only-in-a") and not b.has_plugin("only-in-a")
    infos = {i.name: i for i in describe_plugins(a)}
    assert infos["zfs"].distribution == "nasd-zfs"
    assert "plan_dataset" in infos["zfs"].hooks
    assert infos["manifests"].distribution.startswith("nasd")


def test_builtins_and_installed_plugins_can_be_blocked_by_environment(monkeypatch):
    monkeypatch.setenv("NASD_DISABLED_PLUGINS", "zfs, manifests")
    names = {i.name for i in describe_plugins(make_plugin_manager())}
    assert "zfs" not in names and "manifests" not in names and "api-store" in names


INSTALLED = sorted(i.name for i in describe_plugins(make_plugin_manager()))


@pytest.mark.parametrize("blocked", INSTALLED)
def test_nasd_plugins_runs_with_any_one_plugin_blocked_and_lists_the_others(blocked):
    from nasd_testing.serve import nasd

    result = nasd("plugins", NASD_DISABLED_PLUGINS=blocked)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    assert listed == set(INSTALLED) - {blocked}, result.stdout


@pytest.mark.zfs
def test_zfs_and_snapshots_converge_with_the_smb_plugin_blocked(pool_env, tmp_path):
    """Snapshots offer Previous Versions to the SMB plugin (an optional hook): without SMB they still work."""
    from nasd_testing.serve import nasd

    folder = tmp_path / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"), {
        "apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotSchedule", "metadata": {"name": "hourly"},
        "spec": {"datasets": ["media"], "schedule": {"cron": "0 * * * *"}}})
    result = nasd("--config", pool_env.write_config(), "reconcile", "-f", folder, "--state-dir", tmp_path / "state",
                  NASD_DISABLED_PLUGINS="smb,timemachine")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert {ln.split()[1] for ln in result.stdout.splitlines()[1:] if ln.strip()} >= {"media", "hourly"}


class AsyncOwner:
    """A third-party style plugin whose implementations are coroutines."""

    @hookimpl
    async def plan_resource(self, ctx, resource, dependencies, observed):
        if resource.kind != "NASDirectory":
            return None
        return Plan(actions=[Action("say hello", argv=["true"])])

    @hookimpl
    async def observe(self, ctx, desired):
        return len(desired)


class SecondOwner:
    @hookimpl
    def plan_resource(self, ctx, resource, dependencies, observed):
        return Plan()


DIRECTORY = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASDirectory", "metadata": {"name": "local"},
             "spec": {"type": "local"}}


def _ctx(tmp_path) -> Context:
    return Context(config=Config(stateDir=tmp_path), runner=Runner())


async def test_async_implementations_are_awaited(tmp_path):
    pm = make_plugin_manager(load_entrypoints=False, extra=[("async-owner", AsyncOwner())])
    hooks = Hooks(pm)
    observed = await hooks.observe(_ctx(tmp_path), [])
    assert observed.of("async-owner", int) == 0  # kept under the plugin's name, handed back typed
    plan = await hooks.plan(_ctx(tmp_path), parse_resource(DIRECTORY), {}, observed)
    assert [a.argv for a in plan.actions] == [["true"]]


async def test_a_resource_needs_exactly_one_owner(tmp_path):
    none = Hooks(make_plugin_manager(load_entrypoints=False))
    with pytest.raises(OwnerError, match="no installed plugin handles NASDirectory local"):
        await none.plan(_ctx(tmp_path), parse_resource(DIRECTORY), {}, Observed())
    two = Hooks(make_plugin_manager(load_entrypoints=False,
                                    extra=[("a", AsyncOwner()), ("b", SecondOwner())]))
    with pytest.raises(OwnerError, match="2 plugins claim"):
        await two.plan(_ctx(tmp_path), parse_resource(DIRECTORY), {}, Observed())


def test_an_implementation_without_a_spec_is_rejected():
    class Typo:
        @hookimpl
        def ensure_datset(self):  # misspelt hook name
            pass

    with pytest.raises(Exception, match="unknown hook"):
        make_plugin_manager(load_entrypoints=False, extra=[("typo", Typo())])


class Faulty:
    """A plugin whose action for the directory "broken" raises something the core does not expect,
    and whose observe hook takes only some of the arguments (as pluggy allows)."""

    @hookimpl
    def observe(self, desired):
        return True

    @hookimpl
    def plan_resource(self, ctx, resource, dependencies, observed):
        if resource.kind != "NASDirectory":
            return None

        async def boom(ctx):
            raise OSError(28, "No space left on device")

        if resource.name == "broken":
            return Plan(actions=[Action("write a file", func=boom)])
        return Plan(actions=[Action("say hello", argv=["true"])])


async def test_an_unexpected_error_in_an_action_fails_that_resource_not_the_pass(tmp_path):
    from nasd.feed import DesiredFeed
    from nasd.metrics import Metrics
    from nasd.reconciler import Reconciler
    from nasd.state import StatusStore

    ctx = _ctx(tmp_path)
    hooks = Hooks(make_plugin_manager(load_entrypoints=False, extra=[("faulty", Faulty())]))
    feed = DesiredFeed()
    feed.replace("test", [parse_resource(DIRECTORY | {"metadata": {"name": n}}) for n in ("broken", "fine")])
    reconciler = Reconciler(ctx, hooks, feed, StatusStore(tmp_path), Metrics(ctx.runner))
    report = await reconciler.run_pass()
    outcomes = {o.key[1]: (o.ready, o.reason) for o in report.outcomes}
    assert outcomes == {"broken": (False, "ApplyFailed"), "fine": (True, "Ready")}
    assert "No space left" in reconciler.current[("NASDirectory", "broken")].condition("Ready").message


class Recorder:
    """Owns directories; records deletions; releases "moving" from the feed in the middle of a pass."""

    def __init__(self) -> None:
        self.absent: list[str] = []
        self.feed = None

    @hookimpl
    def plan_resource(self, ctx, resource, dependencies, observed):
        if resource.kind != "NASDirectory":
            return None
        if resource.name == "moving" and self.feed is not None:
            self.feed.release("test", resource.key)  # e.g. a pool moved to another node while a pass runs
        return Plan()

    @hookimpl
    def plan_absent(self, ctx, resource, observed):
        self.absent.append(resource.name)
        return Plan()

    @hookimpl
    def resource_deleted(self, ctx, resource):
        self.absent.append(f"deleted:{resource.name}")


async def test_a_released_resource_is_forgotten_never_deleted_even_when_released_during_a_pass(tmp_path):
    from nasd.daemon import Nasd

    recorder = Recorder()
    nasd = Nasd(Config(stateDir=tmp_path), pm=make_plugin_manager(load_entrypoints=False,
                                                                   extra=[("recorder", recorder)]))
    moving = parse_resource({**DIRECTORY, "metadata": {"name": "moving"}})
    gone = parse_resource({**DIRECTORY, "metadata": {"name": "gone"}})
    nasd.feed.replace("test", [moving, gone])
    await nasd.reconciler.run_pass()
    assert nasd.ctx.reconciled(moving.key) and nasd.ctx.reconciled(gone.key)

    recorder.feed = nasd.feed
    nasd.feed.replace("test", [moving])  # "gone" is deleted; "moving" is released while the pass plans it
    for _ in range(3):
        await nasd.reconciler.run_pass()
    assert recorder.absent == ["gone", "deleted:gone"]
    assert not nasd.ctx.reconciled(moving.key) and moving.key not in nasd.store.known()


class BlindObserver:
    """Owns directories; cannot observe the system (its observe raises); says so in its plans."""

    @hookimpl
    def observe(self, desired):
        raise TemporaryError("the tool is not installed", reason="ToolMissing")

    @hookimpl
    def plan_resource(self, ctx, resource, dependencies, observed):
        if resource.kind != "NASDirectory":
            return None
        observed.of("blind", int)  # raises what observe met
        return Plan()


async def test_a_plugin_that_fails_to_observe_meets_its_error_in_its_own_plans_and_the_others_see_theirs(tmp_path):
    hooks = Hooks(make_plugin_manager(load_entrypoints=False,
                                      extra=[("blind", BlindObserver()), ("async-owner", _Watcher())]))
    observed = await hooks.observe(_ctx(tmp_path), [parse_resource(DIRECTORY)])
    assert observed.of("async-owner", int) == 1
    with pytest.raises(TemporaryError, match="not installed") as raised:
        await hooks.plan(_ctx(tmp_path), parse_resource(DIRECTORY), {}, observed)
    assert raised.value.reason == "ToolMissing"
    with pytest.raises(TypeError, match="observed a int, not a str"):
        observed.of("async-owner", str)


class _Watcher:
    @hookimpl
    def observe(self, desired):
        return len(desired)


class Reporter:
    """Owns directories and reports a status field: ``field``."""

    def __init__(self, fields):
        self.fields = fields

    @hookimpl
    def plan_resource(self, ctx, resource, dependencies, observed):
        return Plan(status=self.fields) if resource.kind == "NASDirectory" else None


@pytest.mark.parametrize("fields, message", [
    ({"colour": "blue"}, "status field 'colour', which Status does not have"),
    ({"conditions": []}, "status field 'conditions', which is the core's to set"),
])
async def test_a_status_field_outside_the_kinds_status_model_fails_that_resource_and_is_not_kept(
        tmp_path, fields, message):
    from nasd.feed import DesiredFeed
    from nasd.metrics import Metrics
    from nasd.reconciler import Reconciler
    from nasd.state import StatusStore

    ctx = _ctx(tmp_path)
    hooks = Hooks(make_plugin_manager(load_entrypoints=False, extra=[("reporter", Reporter(fields))]))
    feed = DesiredFeed()
    feed.replace("test", [parse_resource(DIRECTORY)])
    reconciler = Reconciler(ctx, hooks, feed, StatusStore(tmp_path), Metrics(ctx.runner))
    report = await reconciler.run_pass()
    assert [(o.ready, o.reason) for o in report.outcomes] == [(False, "StatusInvalid")]
    directory = reconciler.current[("NASDirectory", "local")]
    assert message in directory.condition("Ready").message and "colour" not in directory.status.model_dump()


async def test_a_status_field_of_the_wrong_type_is_refused(tmp_path):
    from nasd.models import parse_resource as parse
    from nasd.reconciler import set_status_fields

    user = parse({"apiVersion": "nasd.io/v1alpha1", "kind": "NASUser", "metadata": {"name": "alice"},
                  "spec": {"directory": "local", "uid": 2001}})
    set_status_fields(user.status, {"uid": 2001})
    assert user.status.uid == 2001
    with pytest.raises(ValueError, match="'uid' of the wrong type"):
        set_status_fields(user.status, {"uid": "two thousand"})
    assert user.status.uid == 2001
