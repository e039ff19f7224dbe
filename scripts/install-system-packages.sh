#!/bin/sh
# Install the Debian packages a target needs, only those missing. Usage: install-system-packages.sh python|zfs|samba|mdns|nfs|kubernetes|node|vm
set -eu
need=""
case "${1:-}" in
  python)
    python3 -c 'import venv, ensurepip' 2>/dev/null || need="$need python3-venv" ;;
  zfs)
    # Kernel ZFS when the machine has it, else zfs-fuse (which the tests and the demo start themselves).
    if ! [ -e /dev/zfs ] && ! command -v zfs-fuse >/dev/null 2>&1; then need="$need zfs-fuse"; fi
    command -v unshare >/dev/null 2>&1 || need="$need util-linux"
    # libfaketime: the snapshot schedules' clock-jump tests move a real `nasd serve`'s wall clock
    ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || need="$need faketime" ;;
  samba)
    # smbd and its tools for the SMB plugin; smbclient and nss_wrapper for its tests.
    PATH="$PATH:/usr/sbin:/sbin"
    command -v smbd >/dev/null 2>&1 || need="$need samba"
    command -v smbclient >/dev/null 2>&1 || need="$need smbclient"
    ls /usr/lib/*/samba/vfs/shadow_copy2.so >/dev/null 2>&1 || need="$need samba-vfs-modules"
    ls /usr/lib/*/libnss_wrapper.so* >/dev/null 2>&1 || need="$need libnss-wrapper"
    # smbtorture, Samba's own conformance program, for the SMB conformance tests
    command -v smbtorture >/dev/null 2>&1 || need="$need samba-testsuite"
    command -v useradd >/dev/null 2>&1 || need="$need passwd"
    # `ip`: the Time Machine tests give their mDNS a private network namespace with multicast on loopback
    command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need="$need iproute2" ;;
  mdns)
    # avahi-daemon for the Time Machine tests (they run a private one: installed, not started)
    PATH="$PATH:/usr/sbin:/sbin"
    command -v avahi-daemon >/dev/null 2>&1 || need="$need avahi-daemon"
    command -v dbus-daemon >/dev/null 2>&1 || need="$need dbus-daemon" ;;
  nfs)
    # exportfs (nfs-kernel-server): the NFS plugin checks and applies its exports file with it. The
    # kernel's nfsd is not needed for that; it runs in the VM tier (scripts/vm).
    PATH="$PATH:/usr/sbin:/sbin"
    command -v exportfs >/dev/null 2>&1 || need="$need nfs-kernel-server" ;;
  kubernetes)
    # The Kubernetes tests: openssl makes the test API server's certificate; kubectl is the real client.
    # Debian 12 has no kubectl package: it comes with the machine image (or from the Kubernetes project).
    command -v openssl >/dev/null 2>&1 || need="$need openssl"
    command -v unshare >/dev/null 2>&1 || need="$need util-linux"
    if ! command -v kubectl >/dev/null 2>&1; then
      echo "kubectl is missing: install kubectl 1.32 (https://kubernetes.io/docs/tasks/tools/) and run again" >&2
      exit 1
    fi ;;
  node)
    # A node running nasd as a service (scripts/install.sh, `make install`): kernel ZFS's tools, Samba with its
    # VFS modules (shadow_copy2, fruit), the kernel NFS server's tools; avahi-daemon only with NASD_AVAHI=1 (Time
    # Machine's mDNS records; without it nasd publishes them itself). Never zfs-fuse: a node runs kernel ZFS.
    PATH="$PATH:/usr/sbin:/sbin"
    installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
    if installed zfs-fuse; then
      echo "zfs-fuse is installed: a node needs kernel ZFS (zfsutils-linux), which conflicts with it;" \
        "remove zfs-fuse first (apt-get remove zfs-fuse; its pools can be imported by kernel ZFS)" >&2
      exit 1
    fi
    installed zfsutils-linux || need="$need zfsutils-linux"
    if ! [ -e /dev/zfs ] && ! modinfo zfs >/dev/null 2>&1; then
      echo "note: this kernel has no ZFS module: install zfs-dkms (Debian contrib; builds it for this kernel) or" \
        "a kernel with ZFS, then modprobe zfs" >&2
    fi
    command -v smbd >/dev/null 2>&1 || need="$need samba"
    ls /usr/lib/*/samba/vfs/shadow_copy2.so >/dev/null 2>&1 || need="$need samba-vfs-modules"
    command -v exportfs >/dev/null 2>&1 || need="$need nfs-kernel-server"
    command -v unshare >/dev/null 2>&1 || need="$need util-linux"
    python3 -c 'import venv, ensurepip' 2>/dev/null || need="$need python3-venv"
    if [ "${NASD_AVAHI:-}" = 1 ]; then command -v avahi-daemon >/dev/null 2>&1 || need="$need avahi-daemon"; fi ;;
  vm)
    # the VM tier's host side (scripts/vm): debootstrap builds the image, qemu runs it; no recommends
    # (qemu-system-x86 recommends a desktop's worth of packages)
    for p in debootstrap qemu-system-x86 qemu-utils zstd; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need="$need $p"
    done
    recommends="--no-install-recommends" ;;
  *) echo "usage: $0 python|zfs|samba|mdns|nfs|kubernetes|node|vm" >&2; exit 2 ;;
esac
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages:$need (run as root, or: sudo apt-get install$need)" >&2
  exit 1
fi
echo "installing:$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Packages are installed, not started: nasd and its tests start their own zfs-fuse and smbd.
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1
fi
rc=0
# shellcheck disable=SC2086
apt-get install -y -qq ${recommends:-} $need >/dev/null || rc=$?
[ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
exit $rc
