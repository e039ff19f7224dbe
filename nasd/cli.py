"""The ``nasd`` command line, with kubectl-like habits.

Daemon and one-shot: ``serve``, ``reconcile``, ``plan``. Against a running daemon:
``apply``, ``get``, ``describe``, ``delete``. About the installation: ``plugins``, ``crds``.
Bad input ends with a message naming the field and exit status 2, never a traceback.

The client commands start fast (issue 18): this module imports at its top only click and what the client
needs (``nasd.client``, ``nasd.kind_names``: the standard library's socket and json). The daemon, the models
(pydantic), the configuration, asyncio, aiohttp and yaml are imported inside the commands that use them;
tests/test_cli_start.py fails when a client command imports one it does not need.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from . import __version__
from .client import DEFAULT_SOCKET

if TYPE_CHECKING:
    from .client import Client
    from .config import Config
    from .kind_names import KindNames
    from .models import Resource

EXIT_INVALID = 2
#: the commands that only talk to a running daemon: no logging set up, nothing of the daemon imported
CLIENT_COMMANDS = frozenset({"apply", "get", "describe", "delete"})


def fail(message: str, code: int = EXIT_INVALID) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _config_option(f: Callable) -> Callable:
    """``--config`` given after the command name (``nasd reconcile -f DIR --config CFG``), like kubectl's
    global flags; it overrides the one given before the command name."""

    def store(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
        if value is not None:
            ctx.ensure_object(dict)["config"] = value

    return click.option("--config", type=click.Path(path_type=Path, exists=True, dir_okay=False),
                        expose_value=False, callback=store, help="YAML configuration file.")(f)


def _config(ctx_obj: dict, **overrides: Any) -> Config:
    from .config import ConfigError, load_config

    try:
        return load_config(ctx_obj.get("config"), **overrides)
    except ConfigError as e:
        fail(str(e))
        raise AssertionError


@click.group()
@click.version_option(__version__, prog_name="nasd")
@click.option("--config", "config_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              envvar="NASD_CONFIG", help="YAML configuration file.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, log_level: str) -> None:
    """nasd: declarative ZFS storage and file shares."""
    if ctx.invoked_subcommand not in CLIENT_COMMANDS:  # (they log nothing)
        from .logs import setup_logging

        setup_logging(log_level)
    ctx.obj = {"config": config_path}


# -- daemon -------------------------------------------------------------------------


@main.command()
@click.option("--manifests", "manifests", multiple=True, type=click.Path(path_type=Path),
              help="A folder (or file) of manifests, watched for changes. Repeatable.")
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where nasd keeps its state [/var/lib/nasd].")
@click.option("--socket", type=click.Path(path_type=Path), help=f"Unix socket of the API [{DEFAULT_SOCKET}].")
@click.option("--listen", help="HOST:PORT to serve the API on TCP as well (needs --token-file).")
@click.option("--token-file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@_config_option
@click.pass_obj
def serve(obj: dict, manifests: tuple[Path, ...], state_dir: Path | None, socket: Path | None, listen: str | None,
          token_file: Path | None) -> None:
    """Run the daemon: reconcile continuously, serve the API."""
    config = _config(obj, manifests=list(manifests) or None, stateDir=state_dir, socket=socket, listen=listen,
                     tokenFile=token_file)
    token = None
    if config.listen:
        if config.tokenFile is None:
            fail("--listen needs --token-file: the TCP API is never served without a bearer token")
        assert config.tokenFile is not None
        token = config.tokenFile.read_text().strip()
        if len(token) < 16:
            fail(f"{config.tokenFile}: the token must be at least 16 characters")
    if _socket_in_use(config.socket):
        fail(f"another nasd is already serving on {config.socket}; stop it first or use --socket")
    import asyncio

    try:
        asyncio.run(_serve(config, token))
    except KeyboardInterrupt:
        pass


def _socket_in_use(path: Path) -> bool:
    import socket as socketlib

    if not path.exists():
        return False
    with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False  # a stale socket file from a killed daemon


async def _serve(config: Config, token: str | None) -> None:
    import asyncio
    import signal

    from aiohttp import web

    from .daemon import Nasd
    from .service import Notifier
    from .web.app import make_app

    # systemd (Type=notify): READY=1 after the first pass, WATCHDOG=1 from this loop, STOPPING=1 at the end
    service = Notifier.from_environment()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    holder: list[Nasd] = []
    service.notify("STATUS=starting")
    async with service.watchdog(lambda: "stopping" if stop.is_set() else _service_status(holder[0]) if holder
                                else "starting"):
        async with Nasd(config, watch=True) as nasd:
            nasd.runner.keep = 1000  # (a daemon keeps its recent commands only: its memory does not grow with time)
            holder.append(nasd)
            runners = []
            sock = config.socket
            sock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if sock.exists():
                sock.unlink()
            unix_runner = web.AppRunner(make_app(nasd))
            await unix_runner.setup()
            old_umask = os.umask(0o177)  # the socket is created 0600: only root can open it
            try:
                await web.UnixSite(unix_runner, str(sock)).start()
            finally:
                os.umask(old_umask)
            runners.append(unix_runner)
            address = config.listen_address()
            if address is not None:
                tcp_runner = web.AppRunner(make_app(nasd, token=token))
                await tcp_runner.setup()
                await web.TCPSite(tcp_runner, *address).start()
                runners.append(tcp_runner)
            nasd.ctx.log.info("nasd serving", extra={"socket": str(sock), "listen": config.listen})
            loop_task = asyncio.create_task(nasd.reconciler.loop(), name="reconciler")
            ready_task = asyncio.create_task(
                service.ready_when(nasd.reconciler.first_pass_done, lambda: _service_status(nasd)), name="ready")
            await stop.wait()
            service.stopping()
            for task in (ready_task, loop_task):
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            for r in runners:
                await r.cleanup()
            if sock.exists():
                sock.unlink()
    service.close()


def _service_status(nasd: Any) -> str:
    """systemd's STATUS= line: how many resources are Ready."""
    if not nasd.reconciler.first_pass_done.is_set():
        return "first reconcile pass"
    resources = list(nasd.reconciler.current.values())
    ready = sum(1 for r in resources if r.ready)
    return f"serving: {ready} of {len(resources)} resources Ready"


def _print_table(resources: list[Resource], wide: bool = False) -> None:
    rows = [["KIND", "NAME", "READY", "REASON"] + (["MESSAGE"] if wide else [])]
    for r in resources:
        c = r.condition("Ready")
        row = [r.kind, r.name, c.status if c else "Unknown", c.reason if c else ""]
        if wide:
            row.append((c.message if c else "").replace("\n", " ")[:100])
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _load(files: tuple[Path, ...]) -> list[Resource]:
    from .manifests import load_paths
    from .models import ManifestError

    try:
        return load_paths(files)
    except ManifestError as e:
        # load_paths names each file in its problems; a path that does not exist is named only in ``where``
        problems = e.problems if e.where == "manifests" else [f"{e.where}: {p}" for p in e.problems]
        fail("invalid manifests:\n  " + "\n  ".join(problems))
        raise AssertionError


@main.command()
@click.option("-f", "--filename", "files", multiple=True, required=True, type=click.Path(path_type=Path),
              help="A manifest file or folder. Repeatable.")
@click.option("--state-dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Choice(["table", "wide", "yaml", "json"]), default="wide")
@click.option("--prune", is_flag=True,
              help="Also delete resources reconciled before (in this state dir) that the files no longer declare.")
@_config_option
@click.pass_obj
def reconcile(obj: dict, files: tuple[Path, ...], state_dir: Path | None, output: str, prune: bool) -> None:
    """Converge once, without a daemon; exit 0 only when every resource is Ready."""
    _load(files)  # all files valid, or nothing is applied
    config = _config(obj, manifests=list(files), stateDir=state_dir)
    if _socket_in_use(config.socket):
        fail(f"a nasd daemon is serving on {config.socket}: give it the files with `nasd apply -f`, or stop it "
             "first (two reconcilers on one system would undo each other)")
    import asyncio

    resources = asyncio.run(_reconcile(config, prune))
    _emit(resources, output)
    sys.exit(0 if all(r.ready for r in resources) else 1)


async def _reconcile(config: Config, prune: bool) -> list[Resource]:
    from .daemon import Nasd
    from .models import kind_for

    async with Nasd(config) as nasd:
        nasd.reconciler.prune = prune
        nasd.reconciler.take_wake()
        for _ in range(6):  # converge; a pass that changed something is followed by one that verifies
            report = await nasd.reconciler.run_pass(ignore_backoff=True)
            # (a plugin may derive desired state while observing, e.g. per-user Time Machine datasets)
            if not nasd.reconciler.take_wake() and not report.mutated:
                break
        desired, _ = nasd.feed.snapshot()
        return [nasd.reconciler.current[k] for k in sorted(desired, key=lambda k: (kind_for(k[0]).phase, k[1]))
                if k in nasd.reconciler.current]


def _emit(resources: list[Resource], output: str) -> None:
    if output in ("table", "wide"):
        _print_table(resources, wide=output == "wide")
    else:
        items = [r.to_manifest() for r in resources]
        _dump(items if len(items) != 1 else items[0], output)


def _dump(data: Any, output: str) -> None:
    if output == "json":
        import json

        click.echo(json.dumps(data, indent=2))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


@main.command()
@click.option("-f", "--filename", "files", multiple=True, required=True, type=click.Path(path_type=Path))
@click.option("--state-dir", type=click.Path(path_type=Path))
@click.option("--prune", is_flag=True, help="Also show the deletions `nasd reconcile --prune` would make.")
@_config_option
@click.pass_obj
def plan(obj: dict, files: tuple[Path, ...], state_dir: Path | None, prune: bool) -> None:
    """Print the commands a reconcile would run; run none of them (only read the system; the state
    folder may be created and what the ZFS binary supports cached in it)."""
    _load(files)
    config = _config(obj, manifests=list(files), stateDir=state_dir)
    import asyncio

    lines = asyncio.run(_plan(config, prune))
    for line in lines:
        click.echo(line)


async def _plan(config: Config, prune: bool) -> list[str]:
    from .daemon import Nasd

    async with Nasd(config, read_only=True) as nasd:
        nasd.reconciler.prune = prune
        report = await nasd.reconciler.run_pass(dry_run=True)
    lines = []
    for outcome in report.outcomes:
        if outcome.actions or outcome.reason not in ("Planned",):
            head = f"# {outcome.key[0]}/{outcome.key[1]}"
            if outcome.reason not in ("Planned",):
                head += f": {outcome.reason} {outcome.message}".rstrip()
            lines.append(head)
        lines += [a.render() for a in outcome.actions]
        lines += [f"# {outcome.key[0]}/{outcome.key[1]} waits for a confirmation: {m}" for m in outcome.waiting]
    blocked = [o for o in report.outcomes if not o.ready]
    if blocked:
        lines.append(f"# {len(blocked)} resource(s) cannot converge yet (see the reasons above)")
    elif any(o.waiting for o in report.outcomes) and not any(o.actions for o in report.outcomes):
        lines.append("# nothing runs: the changes above wait for a confirmation")
    elif not any(o.actions for o in report.outcomes):
        lines.append("# nothing to do: everything is as the manifests say")
    return lines


# -- client commands ----------------------------------------------------------------


def _client_options(f: Callable) -> Callable:
    f = click.option("--socket", type=click.Path(path_type=Path), envvar="NASD_SOCKET", default=str(DEFAULT_SOCKET),
                     show_default=True)(f)
    f = click.option("--server", envvar="NASD_SERVER", help="http://HOST:PORT of a TCP API instead of the socket")(f)
    f = click.option("--token", envvar="NASD_TOKEN", help="Bearer token for --server")(f)
    return f


def _client(socket: Path, server: str | None, token: str | None) -> Client:
    from .client import Client, OptionError

    try:
        return Client(socket=str(socket), server=server, token=token)
    except OptionError as e:
        fail(str(e))
        raise AssertionError


def _call(client: Client, request: Callable[..., Any], *args: Any) -> Any:
    """``request(*args)``'s answer (``request`` a method of ``client``); an error of the API, or no daemon to
    reach, ends the command with status 1."""
    from .client import APIError

    try:
        return request(*args)
    except APIError as e:
        fail(str(e), 1)
    except OSError as e:  # no socket, refused, timed out, not HTTP, a TLS failure
        reason = e.strerror if e.strerror and not isinstance(e, TimeoutError) else str(e) or type(e).__name__
        hint = ("the API socket is root's only: run the command as root" if isinstance(e, PermissionError)
                else "is `nasd serve` running? check --socket/--server")
        fail(f"cannot reach nasd at {client.where}: {reason} ({hint})", 1)


def _kind(kind: str) -> KindNames:
    from .kind_names import kind_names

    try:
        return kind_names(kind)
    except KeyError as e:
        fail(str(e.args[0]))
        raise AssertionError


@main.command()
@click.option("-f", "--filename", "files", multiple=True, required=True, type=click.Path(path_type=Path))
@_client_options
def apply(files: tuple[Path, ...], socket: Path, server: str | None, token: str | None) -> None:
    """Create or update resources in a running daemon."""
    resources = _load(files)
    client = _client(socket, server, token)
    for r in resources:
        result = _call(client, client.apply, r.plural, r.to_manifest(with_status=False))
        click.echo(f"{r.kind.lower()}/{result['metadata']['name']} applied")


@main.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-o", "--output", type=click.Choice(["table", "wide", "yaml", "json"]), default="table")
@_client_options
def get(kind: str, name: str | None, output: str, socket: Path, server: str | None, token: str | None) -> None:
    """Show resources of KIND (or one, by NAME) with their Ready condition."""
    cls = _kind(kind)
    client = _client(socket, server, token)
    items = [_call(client, client.get, cls.plural, name)] if name else _call(client, client.list, cls.plural)
    if output in ("yaml", "json"):
        _dump(items[0] if name else {"items": items}, output)
        return
    rows = [["NAME", "READY", "REASON"] + ([cls.key_column[0].upper()] if cls.key_column else [])
            + (["MESSAGE"] if output == "wide" else [])]
    for item in items:
        conds = {c["type"]: c for c in item.get("status", {}).get("conditions", [])}
        ready = conds.get("Ready", {})
        row = [item["metadata"]["name"], ready.get("status", "Unknown"), ready.get("reason", "")]
        if cls.key_column:
            row.append(str(_jsonpath(item, cls.key_column[1]) or ""))
        if output == "wide":
            row.append(ready.get("message", "").replace("\n", " ")[:100])
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _jsonpath(item: dict, path: str) -> Any:
    value: Any = item
    for part in path.strip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@main.command()
@click.argument("kind")
@click.argument("name")
@_client_options
def describe(kind: str, name: str, socket: Path, server: str | None, token: str | None) -> None:
    """Show one resource in full: spec, status and conditions."""
    import yaml

    plural = _kind(kind).plural
    client = _client(socket, server, token)
    item = _call(client, client.get, plural, name)
    meta, status = item["metadata"], item.get("status", {})
    click.echo(f"Name:        {meta['name']}\nKind:        {item['kind']}\nGeneration:  {meta.get('generation')}")
    click.echo("Spec:")
    click.echo("  " + yaml.safe_dump(item.get("spec", {}), sort_keys=False).rstrip().replace("\n", "\n  "))
    fields = {k: v for k, v in status.items() if k != "conditions"}
    if fields:
        click.echo("Status:")
        click.echo("  " + yaml.safe_dump(fields, sort_keys=False).rstrip().replace("\n", "\n  "))
    click.echo("Conditions:")
    for c in status.get("conditions", []):
        click.echo(f"  {c['type']}={c['status']}  {c['reason']}  (generation {c.get('observedGeneration')}, "
                   f"since {c.get('lastTransitionTime')})")
        if c.get("message"):
            click.echo("    " + c["message"].replace("\n", "\n    "))


@main.command()
@click.argument("kind")
@click.argument("name")
@_client_options
def delete(kind: str, name: str, socket: Path, server: str | None, token: str | None) -> None:
    """Delete a resource applied through the API (the data stays unless its spec says Destroy)."""
    plural = _kind(kind).plural
    client = _client(socket, server, token)
    _call(client, client.delete, plural, name)
    click.echo(f"{kind.lower()}/{name} deleted")


# -- about the installation ---------------------------------------------------------


@main.command()
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def plugins(output: str) -> None:
    """List installed plugins, their versions and the hooks each implements."""
    from .plugins import describe_plugins, make_plugin_manager

    infos = describe_plugins(make_plugin_manager())
    if output == "json":
        import json

        click.echo(json.dumps([vars(i) for i in infos], indent=2))
        return
    for info in infos:
        click.echo(f"{info.name}  {info.distribution} {info.version}")
        click.echo(f"    hooks: {', '.join(info.hooks) or '(none)'}")


@main.command()
def crds() -> None:
    """Print the CustomResourceDefinitions generated from the models."""
    from .crds import render_crds

    click.echo(render_crds(), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
