#!/bin/sh
# Install the Debian packages a target needs, only those missing. Usage: install-system-packages.sh python|zfs
set -eu
need=""
case "${1:-}" in
  python)
    python3 -c 'import venv, ensurepip' 2>/dev/null || need="$need python3-venv" ;;
  zfs)
    # Kernel ZFS when the machine has it, else zfs-fuse (which the tests and the demo start themselves).
    if ! [ -e /dev/zfs ] && ! command -v zfs-fuse >/dev/null 2>&1; then need="$need zfs-fuse"; fi
    command -v unshare >/dev/null 2>&1 || need="$need util-linux" ;;
  *) echo "usage: $0 python|zfs" >&2; exit 2 ;;
esac
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages:$need (run as root, or: sudo apt-get install$need)" >&2
  exit 1
fi
echo "installing:$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# zfs-fuse's maintainer script tries to start a service; without systemd that is harmless.
apt-get install -y -qq $need >/dev/null
