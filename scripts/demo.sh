#!/bin/sh
# The demo: nasd serving the manifests in examples/ (a pool "tank" on a sparse file, three datasets).
#
#   scripts/demo.sh         (make demo)        start ZFS if needed, then run `nasd serve` in the foreground
#   scripts/demo.sh clean   (make demo-clean)  undo what the demo made
#
# For a Debian 12 machine, as root. Uses the kernel's ZFS when /dev/zfs exists and `zpool list`
# works; otherwise zfs-fuse: one already serving this machine is used as it is, else the demo
# starts its own and records it in /run/nasd/zfs-fuse.pid. `clean` stops only a zfs-fuse named
# by that file, and destroys the pool tank only if nasd created it (nasd.io:managed=true, local).
set -eu

cd "$(dirname "$0")/.."
REPO=$(pwd)
NASD="$REPO/.venv/bin/nasd"
PATH="$PATH:/usr/sbin:/sbin"
export PATH

POOL=tank
MOUNT=/mnt/tank
IMAGE=/var/lib/nasd/tank-0.img
STATE=/var/lib/nasd/state
RUN=/run/nasd
ZFS_PIDFILE=$RUN/zfs-fuse.pid
NASD_PIDFILE=$RUN/demo-nasd.pid

say() { printf 'demo: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

zfs_works() { zpool list >/dev/null 2>&1; }

# The pid in FILE if it names a live (not zombie) process whose command is NAME.
live_pid() {
    file=$1 name=$2
    [ -f "$file" ] || return 1
    pid=$(tr -dc 0-9 <"$file")
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ "$state" != Z ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name" || return 1
    echo "$pid"
}

# Wait until process PID is gone (or a zombie) for up to SECONDS; return 1 if it is still there.
wait_gone() {
    pid=$1 tries=$(($2 * 10))
    while [ "$tries" -gt 0 ]; do
        [ -r "/proc/$pid/stat" ] || return 0
        [ "$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] || return 0
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}

kernel_zfs() { [ -e /dev/zfs ] && zfs_works; }

# Start the demo's zfs-fuse unless a ZFS is already usable. Prints what it did.
start_zfs() {
    if kernel_zfs; then
        say "using the kernel's ZFS"
        return 0
    fi
    mkdir -p "$RUN" /run/zfs /run/lock/zfs /var/lib/zfs
    if pid=$(live_pid "$ZFS_PIDFILE" zfs-fuse); then
        say "using the zfs-fuse the demo started earlier (pid $pid)"
    elif zfs_works; then
        say "using the zfs-fuse already running on this machine (not started by the demo: left alone by clean)"
        return 0
    else
        command -v zfs-fuse >/dev/null 2>&1 || die "neither kernel ZFS nor zfs-fuse is installed (make system-packages)"
        rm -f "$ZFS_PIDFILE" # a stale pidfile makes zfs-fuse exit silently
        zfs-fuse --pidfile "$ZFS_PIDFILE" --no-kstat-mount || die "zfs-fuse failed to start"
        say "started zfs-fuse (pidfile $ZFS_PIDFILE)"
    fi
    tries=150
    until zfs_works; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "zfs-fuse did not answer \`zpool list\` within 15 s"
        sleep 0.1
    done
    # zfs-fuse imports known pools at start but does not mount them
    zfs mount -a 2>/dev/null || true
}

serve() {
    [ "$(id -u)" = 0 ] || die "the demo needs root (it makes a ZFS pool and mounts it on $MOUNT)"
    [ -x "$NASD" ] || die "$NASD is missing: run make venv (make demo does it)"
    if pid=$(live_pid "$NASD_PIDFILE" "nasd serve"); then
        die "the demo is already running (nasd pid $pid); stop it with Ctrl-C or make demo-clean"
    fi
    start_zfs
    cat <<EOF

nasd is starting: it creates the pool $POOL on the sparse file $IMAGE and the datasets
media, documents and backups from examples/ (mounted under $MOUNT).

Look around, from another terminal in $REPO:
    .venv/bin/nasd get zpool
    .venv/bin/nasd get zdataset -o wide
    ls $MOUNT
    zfs list
Edit a file in examples/ and nasd converges to it within a second or two.

Stop nasd with Ctrl-C (the pool stays). Clean up with: make demo-clean
(destroys the pool $POOL if nasd created it, removes $IMAGE and $STATE,
and stops the zfs-fuse the demo started).

EOF
    mkdir -p "$RUN"
    echo $$ >"$NASD_PIDFILE" # exec keeps this pid
    exec "$NASD" serve --manifests "$REPO/examples" --state-dir "$STATE"
}

stop_demo_nasd() {
    if pid=$(live_pid "$NASD_PIDFILE" "nasd serve"); then
        say "stopping the demo's nasd (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 15 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
    fi
    rm -f "$NASD_PIDFILE"
}

destroy_pool() {
    zpool list -H -o name "$POOL" >/dev/null 2>&1 || return 0
    managed=$(zfs get -H -o value,source nasd.io:managed "$POOL" 2>/dev/null | tr '\t' ' ')
    if [ "$managed" != "true local" ]; then
        say "pool $POOL was not created by nasd (nasd.io:managed is '${managed:-unset}'): left alone, and $IMAGE kept"
        return 1
    fi
    # deepest first; a `dataset is busy` right after an unmount passes on a retry
    for ds in $(zfs list -H -o name -r -t filesystem "$POOL" 2>/dev/null | sort -r); do
        zfs umount "$ds" 2>/dev/null || true
    done
    tries=50
    until out=$(zpool destroy "$POOL" 2>&1); do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "could not destroy pool $POOL: $out"
        sleep 0.2
    done
    say "destroyed pool $POOL"
}

stop_demo_zfs() {
    pid=$(live_pid "$ZFS_PIDFILE" zfs-fuse) || { rm -f "$ZFS_PIDFILE"; return 0; }
    zfs umount -a 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 15; then
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || say "zfs-fuse (pid $pid) did not exit"
    fi
    rm -f "$ZFS_PIDFILE"
    say "stopped the demo's zfs-fuse (pid $pid)"
    # its file systems are gone with it: drop any mount it could not release
    awk -v m="$MOUNT" '$3 ~ /^fuse/ && ($2 == m || index($2, m "/") == 1) {print $2}' /proc/self/mounts |
        sort -r | while read -r mp; do umount -l "$mp" 2>/dev/null || true; done
}

clean() {
    [ "$(id -u)" = 0 ] || die "demo-clean needs root"
    stop_demo_nasd
    keep_image=
    if ! kernel_zfs && ! zfs_works && [ -e "$IMAGE" ] && command -v zfs-fuse >/dev/null 2>&1; then
        say "starting zfs-fuse to look for the pool $POOL on $IMAGE"
        start_zfs
    fi
    if zfs_works; then
        destroy_pool || keep_image=1
    fi
    [ -n "$keep_image" ] || rm -f "$IMAGE"
    rm -rf "$STATE"
    stop_demo_zfs
    # empty mountpoint folders only (rmdir never removes data)
    if [ -d "$MOUNT" ] && ! awk -v m="$MOUNT" '$2 == m || index($2, m "/") == 1 {f=1} END {exit !f}' /proc/self/mounts; then
        find "$MOUNT" -depth -type d -empty -exec rmdir {} + 2>/dev/null || true
    fi
    rmdir /var/lib/nasd "$RUN" 2>/dev/null || true
    say "clean"
}

case "${1:-}" in
    "") serve ;;
    clean) clean ;;
    *) echo "usage: $0 [clean]" >&2; exit 2 ;;
esac
