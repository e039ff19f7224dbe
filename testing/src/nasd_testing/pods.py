"""Run a Deployment's pod the way a kubelet would, as far as a test needs, with no container runtime.

There is no kubelet here, so a test that wants to prove a generated pod really works runs it with
this: a private mount and network namespace (``unshare -m -n``), an overlay of the host's own root
as the container's file system (the nasd image is Debian with the same packages), the pod's
ConfigMap and Secret files written at their mount paths, its hostPath volumes bind-mounted
(recursively, so datasets mounted below appear, as with ``HostToContainer``), loopback up, and the
container's command started in a ``chroot``. A check command then runs in the same namespaces
(e.g. smbclient against the pod's port on 127.0.0.1). Nothing of the pod reaches the host: useradd
writes into the overlay, the ports exist only in the private network namespace.

What it does not do: images (the host is the image), resource limits, probes, restarts, users
other than root, and any volume type other than configMap, secret and hostPath.
"""

from __future__ import annotations

import base64
import shlex
import subprocess
from pathlib import Path
from typing import Any


def _materialize(deployment: dict[str, Any], config_maps: dict[str, dict[str, Any]],
                 secrets: dict[str, dict[str, Any]], files: Path) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Files to copy into the root (source, container path) and host folders to bind (host, container path)."""
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    container = spec["containers"][0]
    copies: list[tuple[Path, str]] = []
    binds: list[tuple[str, str]] = []
    for i, mount in enumerate(container.get("volumeMounts") or []):
        volume = volumes[mount["name"]]
        target = mount["mountPath"]
        if "configMap" in volume:
            data = config_maps[volume["configMap"]["name"]]["data"]
            text = data[mount["subPath"]]
        elif "secret" in volume:
            secret = secrets[volume["secret"]["secretName"]]
            items = {item["path"]: item["key"] for item in volume["secret"].get("items") or []}
            key = items.get(mount["subPath"], mount["subPath"])
            text = base64.b64decode(secret["data"][key]).decode()
        elif "hostPath" in volume:
            binds.append((volume["hostPath"]["path"], target))
            continue
        else:
            raise ValueError(f"volume {mount['name']}: only configMap, secret and hostPath are supported here")
        source = files / f"file-{i}"
        source.write_text(text)
        copies.append((source, target))
    return copies, binds


def run_pod(deployment: dict[str, Any], config_maps: dict[str, dict[str, Any]], secrets: dict[str, dict[str, Any]],
            workdir: Path, check: str, *, wait_for_port: int | None = None, timeout: float = 60.0
            ) -> subprocess.CompletedProcess[str]:
    """Start the pod's container, wait for ``wait_for_port`` on 127.0.0.1, run ``check`` (a shell command)
    in the pod's namespaces, stop the pod, and return the check's result (the pod's output is in
    ``workdir/pod.log``)."""
    for sub in ("upper", "work", "root", "files"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    copies, binds = _materialize(deployment, config_maps, secrets, workdir / "files")
    root = workdir / "root"
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    q = shlex.quote
    lines = [
        "set -eu",
        f"mount -t overlay overlay -o lowerdir=/,upperdir={q(str(workdir / 'upper'))},workdir={q(str(workdir / 'work'))} {q(str(root))}",
        f"mount -t proc proc {q(str(root / 'proc'))}",
        f"mount --rbind /dev {q(str(root / 'dev'))}",
        f"mount -t tmpfs tmpfs {q(str(root / 'tmp'))}",
        f"mount -t tmpfs tmpfs {q(str(root / 'run'))}",
    ]
    for source, target in copies:
        dest = q(str(root) + target)
        lines += [f"mkdir -p $(dirname {dest})", f"cp {q(str(source))} {dest}"]
    for host, target in binds:
        dest = q(str(root) + target)
        lines += [f"mkdir -p {dest}", f"mount --rbind {q(host)} {dest}"]
    lines += [
        "ip link set lo up",
        # its own session, as in a container: smbd signals its whole process group when it stops
        f"setsid chroot {q(str(root))} {' '.join(q(a) for a in command)} > {q(str(workdir / 'pod.log'))} 2>&1 &",
        "pod=$!",
    ]
    if wait_for_port is not None:
        lines += [
            "i=0",
            f"until (echo > /dev/tcp/127.0.0.1/{int(wait_for_port)}) 2>/dev/null; do",
            "  i=$((i+1)); if [ $i -gt 300 ] || ! kill -0 $pod 2>/dev/null; then echo 'the pod did not listen' >&2; "
            f"cat {q(str(workdir / 'pod.log'))} >&2; exit 97; fi; sleep 0.1",
            "done",
        ]
    lines += [f"set +e; chroot {q(str(root))} sh -c {q(check)}; rc=$?", "kill $pod 2>/dev/null; wait $pod 2>/dev/null",
              "exit $rc"]
    (workdir / "pod.sh").write_text("\n".join(lines) + "\n")
    return subprocess.run(["unshare", "-m", "-n", "--fork", "bash", "-c", "\n".join(lines)], capture_output=True,
                          text=True, timeout=timeout, start_new_session=True)
