#!/bin/sh
# The demo: nasd serving the manifests in examples/ (a pool "tank" on a sparse file, three datasets,
# a local user "demo" and the SMB share "media" for that user).
#
#   scripts/demo.sh         (make demo)        start ZFS if needed, converge once, then run `nasd serve`
#                                              in the foreground
#   scripts/demo.sh clean   (make demo-clean)  undo what the demo made
#
# For a Debian 12 machine, as root. Uses the kernel's ZFS when /dev/zfs exists and `zpool list`
# works; otherwise zfs-fuse: one already serving this machine is used as it is, else the demo
# starts its own and records it in /run/nasd/zfs-fuse.pid. `clean` stops only a zfs-fuse named
# by that file, and destroys the pool tank only if nasd created it (nasd.io:managed=true, local).
#
# SMB: nasd runs its own smbd (supervised: its smb.conf, passdb and logs are under the state
# directory) on port 445, or, when something already listens there, on the first free port from
# 4450 up (written into the demo's configuration file, and printed). The user demo is a real
# account of this machine (useradd, uid 2001); its password is in a root-only file the demo
# creates with a random password. `clean` removes the user only if nasd created it (nasd's
# registry <state>/smb/nasd-identities.json lists it), and stops only Samba processes running on
# the demo's smb.conf.
set -eu

cd "$(dirname "$0")/.."
REPO=$(pwd)
NASD="$REPO/.venv/bin/nasd"
PATH="$PATH:/usr/sbin:/sbin"
export PATH

POOL=tank
MOUNT=/mnt/tank
IMAGE=/var/lib/nasd/tank-0.img
MIRROR_IMAGES="/var/lib/nasd/vault-0.img /var/lib/nasd/vault-1.img"  # the mirrored pool vault's two files
STATE=/var/lib/nasd/state
RUN=/run/nasd
ZFS_PIDFILE=$RUN/zfs-fuse.pid
NASD_PIDFILE=$RUN/demo-nasd.pid
CONFIG=/var/lib/nasd/demo-config.yaml
SECRETS=/var/lib/nasd/secrets
SECRET=$SECRETS/demo
DEMO_USER=demo
DEMO_UID=2001
SHARE=media
SMB_CONF=$STATE/smb/smb.conf
REGISTRY=$STATE/smb/nasd-identities.json

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

# Whether something listens on TCP port $1 (in this network namespace, IPv4 or IPv6).
port_in_use() {
    hex=$(printf ':%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
        awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p {f = 1} END {exit !f}'
}

# The port for the demo's smbd: 445, or the first free one from 4450 up.
choose_port() {
    if ! port_in_use 445; then
        echo 445
        return 0
    fi
    p=4450
    while port_in_use "$p"; do
        p=$((p + 1))
        [ "$p" -lt 4500 ] || die "port 445 and 4450-4499 are all in use: set plugins.smb.port in $CONFIG by hand"
    done
    echo "$p"
}

# Whether nasd's registry says that nasd created the user $1.
nasd_created_user() {
    [ -f "$REGISTRY" ] || return 1
    tr -d ' \t\n' <"$REGISTRY" | grep -o '"users":\[[^]]*\]' | grep -qF "\"$1\""
}

# The pids of Samba processes running on the demo's smb.conf (smbd, samba-dcerpcd, rpcd_*).
demo_samba_pids() {
    for d in /proc/[0-9]*; do
        comm=$(cat "$d/comm" 2>/dev/null) || continue
        case $comm in smbd* | samba-dcerpcd* | rpcd_*) ;; *) continue ;; esac
        if tr '\0' '\n' <"$d/cmdline" 2>/dev/null | grep -qxF -e "$SMB_CONF" -e "--configfile=$SMB_CONF"; then
            echo "${d#/proc/}"
        fi
    done
}

# Stop Samba processes left on the demo's smb.conf (a demo nasd that was killed could not stop its smbd).
stop_demo_samba() {
    pids=$(demo_samba_pids)
    [ -n "$pids" ] || return 0
    say "stopping the Samba processes left running on $SMB_CONF: $(echo $pids)"
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in $pids; do
        wait_gone "$pid" 10 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
    done
}

# The demo user's password file, root-only (nasd refuses one others can read): created with a random
# password if missing. Prints the password.
make_secret() {
    if [ ! -s "$SECRET" ]; then
        (
            umask 077
            mkdir -p "$SECRETS"
            tr -dc 'A-Za-z0-9' </dev/urandom | head -c 16 >"$SECRET.tmp"
            echo >>"$SECRET.tmp"
            mv "$SECRET.tmp" "$SECRET"
        )
        say "created $SECRET (the SMB password of the user $DEMO_USER; mode 0600)"
    fi
    chmod 700 "$SECRETS"
    chmod 600 "$SECRET"
    head -n 1 "$SECRET"
}

# Say beforehand when nasd will have to leave the demo user alone.
check_demo_user() {
    if grep -q "^$DEMO_USER:" /etc/passwd && ! nasd_created_user "$DEMO_USER"; then
        say "WARNING: a user $DEMO_USER already exists on this machine and nasd did not create it: nasd leaves it"
        say "alone (NASUser $DEMO_USER: Unmanaged), so the share $SHARE will not accept the demo's password"
    fi
    other=$(awk -F: -v u="$DEMO_UID" '$3 == u {print $1; exit}' /etc/passwd)
    if [ -n "$other" ] && [ "$other" != "$DEMO_USER" ]; then
        say "WARNING: uid $DEMO_UID belongs to $other: NASUser $DEMO_USER will be UIDInUse (change its uid in examples/users.yaml)"
    fi
}

serve() {
    [ "$(id -u)" = 0 ] || die "the demo needs root (it makes a ZFS pool and a user, and runs smbd)"
    [ -x "$NASD" ] || die "$NASD is missing: run make venv (make demo does it)"
    if pid=$(live_pid "$NASD_PIDFILE" "nasd serve"); then
        die "the demo is already running (nasd pid $pid); stop it with Ctrl-C or make demo-clean"
    fi
    if ! command -v smbd >/dev/null 2>&1 || ! command -v smbclient >/dev/null 2>&1; then
        "$REPO/scripts/install-system-packages.sh" samba || die "Samba is missing and could not be installed"
    fi
    stop_demo_samba
    start_zfs
    mkdir -p /var/lib/nasd "$RUN"
    password=$(make_secret)
    port=$(choose_port)
    [ "$port" = 445 ] || say "port 445 is in use: the demo's smbd listens on port $port instead"
    cat >"$CONFIG" <<EOF
# Written by scripts/demo.sh; removed by make demo-clean. The users are real accounts of this
# machine (identityRoot is /, the default); nasd runs its own smbd on this port.
plugins:
  smb:
    port: $port
EOF
    check_demo_user
    say "converging examples/ once (nasd reconcile): pool, datasets, user $DEMO_USER, share $SHARE"
    if ! "$NASD" reconcile -f "$REPO/examples" --state-dir "$STATE" --config "$CONFIG" -o wide; then
        say "not everything is Ready yet (see above): nasd serve keeps trying, and says why"
    fi
    if [ "$port" = 445 ]; then p=""; else p=" -p $port"; fi
    cat <<EOF

nasd is starting: it serves the pool $POOL (on the sparse file $IMAGE), the datasets media,
documents and backups from examples/ (mounted under $MOUNT), and the dataset media as the SMB
share $SHARE for the user $DEMO_USER, from an smbd of its own on port $port. The dataset backups is
the Time Machine share backups (512Mi at most): nasd advertises it over mDNS, so a Mac on this
network lists it in Time Machine's "Select Backup Disk" (log in as $DEMO_USER).

Try the share (the password is in $SECRET):
    smbclient //localhost/$SHARE$p -U $DEMO_USER%$password -c ls
    echo hello >/tmp/hello.txt
    smbclient //localhost/$SHARE$p -U $DEMO_USER%$password -c 'put /tmp/hello.txt hello.txt; ls'

Look around, from another terminal in $REPO:
    .venv/bin/nasd get zpool
    .venv/bin/nasd get zdataset -o wide
    .venv/bin/nasd get nasshare -o wide
    .venv/bin/nasd describe nasshare $SHARE
    ls -l $MOUNT/$SHARE
Edit a file in examples/ and nasd converges to it within a second or two.

Stop nasd with Ctrl-C (the pool stays; its smbd stops with it). Clean up with: make demo-clean
(removes the user $DEMO_USER if nasd created it, $SECRET and $CONFIG,
destroys the pools $POOL and vault if nasd created them, removes their files and $STATE,
and stops the zfs-fuse the demo started).

EOF
    echo $$ >"$NASD_PIDFILE" # exec keeps this pid
    exec "$NASD" serve --manifests "$REPO/examples" --state-dir "$STATE" --config "$CONFIG"
}

stop_demo_nasd() {
    if pid=$(live_pid "$NASD_PIDFILE" "nasd serve"); then
        say "stopping the demo's nasd (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 15 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
    fi
    rm -f "$NASD_PIDFILE"
}

# Remove the user demo only if nasd created it (its registry says so); its group goes with it.
remove_demo_user() {
    grep -q "^$DEMO_USER:" /etc/passwd || return 0
    if ! nasd_created_user "$DEMO_USER"; then
        say "the user $DEMO_USER was not created by nasd: left alone"
        return 0
    fi
    userdel "$DEMO_USER" || { say "userdel $DEMO_USER failed: the user is still there"; return 0; }
    # nasd made it with useradd -U: a group of the same name, which userdel removes unless
    # USERGROUPS_ENAB is off in /etc/login.defs
    if grep -q "^$DEMO_USER:" /etc/group; then
        groupdel "$DEMO_USER" 2>/dev/null || say "the group $DEMO_USER could not be removed"
    fi
    say "removed the user $DEMO_USER (created by nasd)"
}

destroy_pool() {  # POOL IMAGE...
    pool=$1
    shift
    zpool list -H -o name "$pool" >/dev/null 2>&1 || return 0
    managed=$(zfs get -H -o value,source nasd.io:managed "$pool" 2>/dev/null | tr '\t' ' ')
    if [ "$managed" != "true local" ]; then
        say "pool $pool was not created by nasd (nasd.io:managed is '${managed:-unset}'): left alone, and $* kept"
        return 1
    fi
    # deepest first; a `dataset is busy` right after an unmount passes on a retry
    for ds in $(zfs list -H -o name -r -t filesystem "$pool" 2>/dev/null | sort -r); do
        zfs umount "$ds" 2>/dev/null || true
    done
    tries=50
    until out=$(zpool destroy "$pool" 2>&1); do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "could not destroy pool $pool: $out"
        sleep 0.2
    done
    say "destroyed pool $pool"
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
    stop_demo_samba
    remove_demo_user # before $STATE goes: nasd's registry of the users it created is there
    keep_image=
    if ! kernel_zfs && ! zfs_works && [ -e "$IMAGE" ] && command -v zfs-fuse >/dev/null 2>&1; then
        say "starting zfs-fuse to look for the pool $POOL on $IMAGE"
        start_zfs
    fi
    keep_mirror=
    if zfs_works; then
        destroy_pool tank "$IMAGE" || keep_image=1
        destroy_pool vault $MIRROR_IMAGES || keep_mirror=1  # (examples/pool-mirror.yaml)
    fi
    [ -n "$keep_image" ] || rm -f "$IMAGE"
    [ -n "$keep_mirror" ] || rm -f $MIRROR_IMAGES
    rm -rf "$STATE"
    rm -f "$SECRET" "$SECRET.tmp" "$CONFIG"
    rmdir "$SECRETS" 2>/dev/null || true
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
