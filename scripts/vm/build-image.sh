#!/usr/bin/env bash
# Build (or reuse) the VM test image: a Debian bookworm root filesystem made with debootstrap, with OpenZFS 2.1
# (zfs-dkms, built for the image's kernel), kernel nfsd, Samba, sanoid and /opt/nasd-venv. Output: a directory
# with rootfs.ext4 (raw, sparse), vmlinux (+ vmlinuz) and initrd.img, printed on the last line of stdout (progress: stderr).
# The image is keyed on the recipe (the files of scripts/vm/ except run.sh), the candidate versions of the key
# guest packages and requirements.txt, and cached in ${NASD_VM_CACHE:-/var/cache/nasd-vm}, with a .deb cache and a
# cache of the DKMS-built zfs modules (keyed on the zfs-dkms and kernel package versions). Needs root.
# Env: NASD_VM_CACHE; NASD_VM_MIRROR (default http://deb.debian.org/debian); NASD_VM_APT_MAX_AGE (seconds the
# private package lists are trusted before apt-get update, default 21600; 0 = always update).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${NASD_VM_CACHE:-/var/cache/nasd-vm}
mirror=${NASD_VM_MIRROR:-http://deb.debian.org/debian}
secmirror=${NASD_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
suite=bookworm
max_age=${NASD_VM_APT_MAX_AGE:-21600}
free_mb=2048   # free space inside the ext4 for pools on sparse files and tests

log() { echo "build-image: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"

# --- host packages (only the missing ones; nothing gets started) ---------------------------------------------
"$here/../install-system-packages.sh" vm || die "installing the host packages (debootstrap, qemu) failed"

mkdir -p "$cache"/{debs,modules,images,apt/lists/partial,apt/cache,pip}
exec 9>"$cache/lock"
flock 9   # one build at a time; a second caller waits and then reuses the image

# leftovers of a build that was killed outright (we hold the lock, so none is running)
for stale in "$cache/images"/.build.*; do
  if [ -d "$stale" ] && ! grep -q " $stale/" /proc/mounts; then rm -rf "$stale"; fi
done

# --- candidate versions from a private apt setup (main+contrib; the host's sources stay as they are) ----------
cat > "$cache/apt/sources.list" <<EOF
deb $mirror $suite main contrib
deb $mirror $suite-updates main contrib
deb $secmirror $suite-security main contrib
EOF
apt_opts=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache"
  -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null -o APT::Architecture=amd64)
stamp="$cache/apt/updated"
if [ "$max_age" = 0 ] || [ ! -e "$stamp" ] || [ $(( $(date +%s) - $(stat -c %Y "$stamp") )) -gt "$max_age" ]; then
  log "refreshing the private package lists"
  if apt-get "${apt_opts[@]}" update -qq >&2; then touch "$stamp"
  elif [ -e "$stamp" ]; then log "WARNING: apt-get update failed; using the package lists from $(date -r "$stamp")"
  else die "apt-get update (private lists) failed"; fi
fi
key_pkgs="linux-image-amd64 zfs-dkms zfsutils-linux samba nfs-kernel-server sanoid python3"
# shellcheck disable=SC2086
versions=$(apt-cache "${apt_opts[@]}" policy $key_pkgs | awk '/^[^ ]/{p=$1} /Candidate:/{print p, $2}')
[ "$(echo "$versions" | grep -vc '(none)')" = 7 ] || die "missing candidate versions:
$versions"
kernel_ver=$(echo "$versions" | awk '$1=="linux-image-amd64:"{print $2}')
zfs_ver=$(echo "$versions" | awk '$1=="zfs-dkms:"{print $2}')

# The recipe: every file of scripts/vm/ that shapes the image (run.sh only boots it; systemd-boot.sh goes in
# through the share at boot).
recipe=$(cd "$here" && find . -maxdepth 1 -type f ! -name run.sh ! -name systemd-boot.sh ! -name '*.md' -print0 | sort -z | xargs -0 sha256sum)
key=$(printf '%s\n%s\n' "$recipe" "$versions" | sha256sum | cut -c1-16)
img="$cache/images/$key"
if [ -e "$img/complete" ]; then
  log "image $key is up to date"
  echo "$img"
  exit 0
fi

# --- build into a temporary directory next to the images, renamed into place when complete -------------------
t0=$(date +%s)
work=$(mktemp -d "$cache/images/.build.XXXXXX")
root="$work/rootfs"
mounted=()
unmount_all() {
  local i
  for (( i=${#mounted[@]}-1; i>=0; i-- )); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
  mounted=()
}
cleanup() {
  unmount_all
  # never remove a tree that still has something mounted in it (the .deb cache, /dev)
  if [ -d "$work" ] && ! grep -q " $work/" /proc/mounts; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mnt() { mount "$@"; mounted+=("${!#}"); }   # last argument is the mount point

log "building image $key (kernel $kernel_ver, zfs $zfs_ver) in $work"
debootstrap --arch=amd64 --variant=minbase --components=main,contrib \
  --include=systemd-sysv,udev,kmod,iproute2,procps,ca-certificates \
  --cache-dir="$cache/debs" "$suite" "$root" "$mirror" >&2 || die "debootstrap failed"
log "debootstrap done ($(( $(date +%s) - t0 )) s)"

cat > "$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main contrib
deb $mirror $suite-updates main contrib
deb $secmirror $suite-security main contrib
EOF
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
# the mirror may serve a dated snapshot whose Release files are past Valid-Until
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAcquire::Check-Valid-Until "false";\n' \
  > "$root/etc/apt/apt.conf.d/90nasd"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"   # name resolution for apt and pip in the chroot
# no docs/man pages/translations: a smaller image is faster to make and to boot
cat > "$root/etc/dpkg/dpkg.cfg.d/90nasd-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF
# a small initrd: the guest only needs virtio disk and ext4 to find its root
mkdir -p "$root/etc/initramfs-tools/conf.d"
echo 'MODULES=list' > "$root/etc/initramfs-tools/conf.d/90nasd"
printf '%s\n' virtio_pci virtio_blk ext4 >> "$root/etc/initramfs-tools/modules"
echo nasd-vm > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 nasd-vm\n::1 localhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
: > "$root/etc/fstab"

mnt -t proc proc "$root/proc"
mnt -t sysfs sysfs "$root/sys"
mnt --bind /dev "$root/dev"
mnt -t devpts devpts "$root/dev/pts"
mnt -t tmpfs tmpfs "$root/tmp"
mnt --bind "$cache/debs" "$root/var/cache/apt/archives"
mkdir -p "$root/var/cache/pip-nasd"
mnt --bind "$cache/pip" "$root/var/cache/pip-nasd"

inchroot() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive "$@"; }
apt_in() { inchroot apt-get -y -q -o Dpkg::Use-Pty=0 "$@" >&2; }

apt_in update
# kernel first, in its own call
apt_in install linux-image-amd64 initramfs-tools || die "kernel install failed"
kver=$(ls "$root/lib/modules" | sort -V | tail -1)
kpkg_ver=$(inchroot dpkg-query -W -f='${Version}' "linux-image-$kver")
modkey="zfs-${zfs_ver}_linux-image-${kver}-${kpkg_ver}"
modcache="$cache/modules/$modkey"
log "kernel $kver ($kpkg_ver) installed ($(( $(date +%s) - t0 )) s)"

# zfsutils-linux only recommends the module package, so it goes in alone first
apt_in install zfsutils-linux || die "zfsutils-linux install failed"
installed() { inchroot dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1=="ii"{print $2}' | sort; }
if [ -d "$modcache" ]; then
  log "using cached zfs modules $modkey"
else
  # DKMS builds zfs.ko for every installed kernel that has headers ("modprobe zfs FATAL" here is harmless)
  before=$(installed)
  apt_in install linux-headers-amd64 || die "kernel headers install failed"
  apt_in install zfs-dkms || die "zfs-dkms install failed"
  dkmsdir="$root/lib/modules/$kver/updates/dkms"
  ls "$dkmsdir"/zfs.ko* >/dev/null 2>&1 || die "DKMS did not build zfs.ko for $kver (nothing in ${dkmsdir#$root})"
  rm -rf "$modcache.tmp" && mkdir -p "$modcache.tmp" && cp -a "$dkmsdir/." "$modcache.tmp/"
  mv "$modcache.tmp" "$modcache"
  log "zfs modules built and cached as $modkey ($(( $(date +%s) - t0 )) s)"
  # DKMS, the headers and the compiler are not needed at run time: purge exactly what this step added, so the
  # image is the same as with a cache hit
  # shellcheck disable=SC2046
  apt_in purge $(comm -13 <(echo "$before") <(installed)) || die "purge of the build tools failed"
fi
# (re)install the modules from the cache so both paths give the same image
rm -rf "$root/lib/modules/$kver/updates/dkms" && mkdir -p "$root/lib/modules/$kver/updates/dkms"
cp -a "$modcache/." "$root/lib/modules/$kver/updates/dkms/"
inchroot depmod -a "$kver"
inchroot modinfo -k "$kver" -F version zfs >/dev/null || die "zfs module not found for $kver after install"
log "zfs $(inchroot modinfo -k "$kver" -F version zfs) for $kver"

apt_in install nfs-kernel-server nfs-common rpcbind samba samba-vfs-modules smbclient samba-testsuite libnss-wrapper passwd \
  python3 python3-venv attr acl util-linux sanoid || die "service packages install failed"
log "packages installed ($(( $(date +%s) - t0 )) s)"

# Python: the test venv, from PyPI with the pins of requirements.txt
# (the registry may be reached through a TLS proxy that only the host's CA bundle trusts: pip in the chroot
# gets that bundle for this one call, from /tmp, which is not part of the image)
cp "$here/requirements.txt" "$root/tmp/requirements.txt"
cp -L "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$root/tmp/host-ca.pem"
inchroot python3 -m venv /opt/nasd-venv
inchroot PIP_DEFAULT_TIMEOUT=180 /opt/nasd-venv/bin/pip install -q --disable-pip-version-check \
  --cert /tmp/host-ca.pem --cache-dir /var/cache/pip-nasd -r /tmp/requirements.txt >&2 || die "pip install failed"
log "venv ready ($(( $(date +%s) - t0 )) s)"

# our init (PID 1), mount points, and the record of what went into this image
install -m 0755 "$here/init" "$root/sbin/nasd-init"
mkdir -p "$root/mnt/host" "$root/src"
{ echo "key $key"; echo "kernel $kver"; echo "$versions"; inchroot /opt/nasd-venv/bin/pip freeze; } \
  > "$work/manifest"
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"
# The uncompressed kernel as well: qemu boots it directly through its PVH entry point, which skips the
# bzImage's self-decompression (~6 s under TCG). run.sh falls back to vmlinuz without it.
/usr/bin/python3 - "$work/vmlinuz" "$work/vmlinux" <<'PY' || log "WARNING: no vmlinux (boot will be slower)"
import lzma, sys
data = open(sys.argv[1], "rb").read()
at = data.find(b"\xfd7zXZ\x00")
if at < 0:
    sys.exit("no xz payload in the bzImage")
elf = lzma.LZMADecompressor().decompress(data[at:])
if elf[:4] != b"\x7fELF" or b"Xen" not in elf:
    sys.exit("the payload is not an ELF kernel with a PVH note")
open(sys.argv[2], "wb").write(elf)
PY
inchroot update-initramfs -u -k "$kver" >&2
cp "$root/boot/initrd.img-$kver" "$work/initrd.img"

unmount_all
rm -rf "$root/var/lib/apt/lists"/* "$root/var/cache/apt"/*.bin "$root/var/cache/pip-nasd" "$root/tmp"/* \
  "$root/var/log"/*.log "$root/usr/sbin/policy-rc.d"
: > "$root/etc/resolv.conf"   # the guest has no network
mkdir -p "$root/var/cache/apt/archives/partial" "$root/var/lib/apt/lists/partial"

# ext4 from the tree (no loop mount), with ~2 GB free
used_mb=$(du -sm "$root" | cut -f1)
size_mb=$(( used_mb * 115 / 100 + free_mb + 256 ))
truncate -s "${size_mb}M" "$work/rootfs.ext4"
mkfs.ext4 -q -F -L nasd-root -E lazy_itable_init=0,lazy_journal_init=0 -d "$root" "$work/rootfs.ext4" >&2 \
  || die "mkfs.ext4 failed"
rm -rf "$root"
chmod 755 "$work"
touch "$work/complete"

# atomically into place; then drop the images of other keys
rm -rf "$img"
mv -T "$work" "$img"
for old in "$cache/images"/*; do
  [ "$old" = "$img" ] || rm -rf "$old"
done
log "image $key built in $(( $(date +%s) - t0 )) s: $(du -sh --apparent-size "$img/rootfs.ext4" | cut -f1) apparent, \
$(du -sh "$img/rootfs.ext4" | cut -f1) on disk"
echo "$img"
