#!/usr/bin/env bash
# Install nasd as a service on this machine (`make install`), or remove it (`make uninstall`).
#
#   install:   the Debian packages a node needs (scripts/install-system-packages.sh node), nasd and every plugin
#              of this checkout into a venv in /opt/nasd (their dependencies from the package registry),
#              /usr/local/sbin/nasd linked to it, the systemd unit /etc/systemd/system/nasd.service,
#              /etc/nasd/config.yaml (only when absent), /etc/nasd/manifests.d and /var/lib/nasd; then, when
#              systemd runs this machine, daemon-reload and enable --now (an upgrade restarts a running nasd).
#              An upgrade (install again) keeps the configuration, the state and the manifests.
#   uninstall: stops and disables the unit, removes it, the venv and the link. Keeps /etc/nasd (configuration,
#              manifests) and /var/lib/nasd (state); PURGE=1 removes those two folders as well. No pool, dataset
#              or share data is ever touched.
#
# Env: ROOT (install below this folder instead of /, with every path written into the files pointing there:
# no system packages, no running systemd touched; the tests use it), PYTHON (python3), PURGE=1 (uninstall),
# NASD_KEEP_SYSTEM_SMBD=1 (leave Debian's smbd/nmbd services alone: only for `plugins: {smb: {mode: system}}`).
# pip's own variables apply (PIP_INDEX_URL, PIP_NO_INDEX=1 with PIP_FIND_LINKS=DIR for an offline install).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
root=${ROOT:-}
root=${root%/}
python=${PYTHON:-python3}
venv=$root/opt/nasd
link=$root/usr/local/sbin/nasd
unit=$root/etc/systemd/system/nasd.service
etc=$root/etc/nasd
state=$root/var/lib/nasd

say() { echo "nasd-install: $*"; }
die() { echo "nasd-install: ERROR: $*" >&2; exit 1; }
systemd_running() { [ -z "$root" ] && [ -d /run/systemd/system ]; }

pip() { "$venv/bin/python" -m pip --disable-pip-version-check -q "$@"; }

install_nasd() {
  if [ -z "$root" ]; then
    [ "$(id -u)" = 0 ] || die "run as root (sudo make install)"
    "$here/install-system-packages.sh" node
  fi
  "$here/install-system-packages.sh" python

  work=$(mktemp -d "${TMPDIR:-/tmp}/nasd-install.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # a copy of the checkout's distributions: building them leaves no build/ or egg-info in the checkout
  mkdir -p "$work/src"
  (cd "$src" && tar --exclude=.venv --exclude=.git --exclude=build --exclude='*.egg-info' --exclude=__pycache__ \
    --exclude=.vm-out -cf - pyproject.toml $(ls setup.cfg setup.py 2>/dev/null) README.md nasd plugins) \
    | tar -xf - -C "$work/src"
  dists=("$work/src")
  for p in "$work"/src/plugins/*/pyproject.toml; do dists+=("$(dirname "$p")"); done

  if [ ! -x "$venv/bin/python" ]; then
    say "creating the venv $venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
  else
    say "upgrading the venv $venv"
  fi
  # the build tools (pip builds this checkout's distributions with them, without an isolated build environment)
  "$venv/bin/python" -c 'import setuptools, wheel' 2>/dev/null || pip install "setuptools>=64" wheel
  say "building nasd and ${#dists[@]} distribution(s) with its plugins"
  pip wheel --no-deps --no-build-isolation -w "$work/wheels" "${dists[@]}"
  # dependencies from the registry (or PIP_FIND_LINKS), then this checkout's code over an older install
  pip install "$work"/wheels/*.whl
  pip install --no-deps --force-reinstall "$work"/wheels/*.whl
  "$venv/bin/nasd" plugins >/dev/null || die "the installed nasd does not start: $venv/bin/nasd plugins"
  install -m 0644 "$src/README.md" "$venv/README.md"

  mkdir -p "$(dirname "$link")"
  ln -sfn "$venv/bin/nasd" "$link"

  mkdir -p "$(dirname "$unit")"
  sed -e "s|/usr/local/sbin/nasd|$link|" -e "s|/etc/nasd/config.yaml|$etc/config.yaml|" \
    -e "s|file:/opt/nasd/|file:$venv/|" "$src/deploy/systemd/nasd.service" > "$unit.tmp"
  chmod 0644 "$unit.tmp" && mv "$unit.tmp" "$unit"

  mkdir -p "$etc/manifests.d"
  mkdir -p -m 0711 "$state"
  if [ -e "$etc/config.yaml" ]; then
    say "keeping $etc/config.yaml"
  else
    write_config > "$etc/config.yaml.tmp"
    chmod 0644 "$etc/config.yaml.tmp" && mv "$etc/config.yaml.tmp" "$etc/config.yaml"
    say "wrote $etc/config.yaml"
  fi
  "$link" --config "$etc/config.yaml" plugins >/dev/null || die "$etc/config.yaml is not valid (see above)"

  if systemd_running; then
    systemctl daemon-reload
    if [ "${NASD_KEEP_SYSTEM_SMBD:-}" != 1 ]; then
      for s in smbd.service nmbd.service; do
        if systemctl -q is-enabled "$s" 2>/dev/null || systemctl -q is-active "$s" 2>/dev/null; then
          say "nasd runs its own smbd on port 445: disabling Debian's $s (NASD_KEEP_SYSTEM_SMBD=1 keeps it)"
          systemctl disable -q --now "$s" || true
        fi
      done
    fi
    systemctl enable -q nasd.service
    if systemctl -q is-active nasd.service; then
      say "restarting nasd (an upgrade; waits for its first pass)"
      systemctl restart nasd.service
    else
      say "starting nasd (waits for its first pass)"
      systemctl start nasd.service
    fi
    say "done: systemctl status nasd; journalctl -u nasd; nasd get zdatasets"
  elif [ -n "$root" ]; then
    systemctl --root="$root" enable -q nasd.service
    say "installed below $root (not started)"
  else
    say "systemd is not running this machine: start nasd yourself: $link serve --config $etc/config.yaml"
  fi
}

write_config() {
  cat <<EOF
# nasd's configuration (the schema is nasd/config.py). nasd reads it at start: after an edit,
# \`systemctl restart nasd\`. \`make install\` writes it only when it is absent; an upgrade keeps it.
stateDir: $state
# manifests (ZPool, ZDataset, NASShare, NASUser, ZSnapshotSchedule, ...), watched: a change applies itself
manifests: [$etc/manifests.d]
EOF
  if [ -n "$root" ]; then echo "socket: $root/run/nasd/nasd.sock"; else echo "# socket: /run/nasd/nasd.sock"; fi
  cat <<'EOF'
# the API on TCP as well (needs a token file, 16 characters or more)
# listen: 127.0.0.1:8740
# tokenFile: /etc/nasd/token
plugins:
  # pools mount under <mountRoot>/<pool>
  zfs: {mountRoot: /mnt}
  # nasd runs its own smbd (supervised) on port 445; Samba's state, locks and passdb in <stateDir>/smb
  smb: {}
  #   port: 445
  #   interfaces: [eth0]
  #   workgroup: WORKGROUP
  # exports in /etc/exports.d/nasd.exports, served by the kernel NFS server (nfs-server.service)
  nfs: {}
  # Time Machine's mDNS records: through avahi-daemon when it runs, else nasd publishes them itself
  # timemachine: {mdns: auto}
  # resources from a Kubernetes cluster's API as well (the nasd.io CRDs)
  # kubernetes: {kubeconfig: /etc/nasd/kubeconfig, nodeName: my-node}
EOF
}

uninstall_nasd() {
  if [ -z "$root" ]; then [ "$(id -u)" = 0 ] || die "run as root (sudo make uninstall)"; fi
  if systemd_running; then
    if [ -e "$unit" ] || systemctl -q is-active nasd.service 2>/dev/null; then
      say "stopping nasd (its smbd and helpers go with it)"
      systemctl disable -q --now nasd.service || true
    fi
  elif [ -n "$root" ] && [ -e "$unit" ]; then
    systemctl --root="$root" disable -q nasd.service || true
  fi
  rm -f "$unit"
  if systemd_running; then systemctl daemon-reload; systemctl reset-failed nasd.service 2>/dev/null || true; fi
  if [ -L "$link" ] && [ "$(readlink "$link")" = "$venv/bin/nasd" ]; then rm -f "$link"; fi
  rm -rf "$venv"
  say "removed the unit, $venv and $link"
  if [ "${PURGE:-}" = 1 ]; then
    for d in "$etc" "$state"; do
      # never through a mount (a dataset mounted below it keeps its data)
      if awk -v d="$d" '$2 == d || index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
        die "something is mounted below $d: not removing it (unmount it first)"
      fi
    done
    rm -rf --one-file-system "$etc" "$state"
    say "PURGE=1: removed $etc and $state (pools and datasets are untouched)"
  else
    say "kept $etc (configuration, manifests) and $state (state); PURGE=1 removes them. Pools and datasets stay."
  fi
}

case "${1:-}" in
  install) install_nasd ;;
  uninstall) uninstall_nasd ;;
  *) echo "usage: $0 install|uninstall   (env: ROOT, PURGE=1, PYTHON)" >&2; exit 2 ;;
esac
